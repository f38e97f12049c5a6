package main

import "github.com/spf13/cobra"

// imageCmd groups the disk image commands: build, inspect, check.
var imageCmd = &cobra.Command{
	Use:   "image",
	Short: "Build, inspect and check confidential workload disk images",
}

func init() { rootCmd.AddCommand(imageCmd) }
