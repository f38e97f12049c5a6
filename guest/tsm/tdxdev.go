package tsm

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	labi "github.com/google/go-tdx-guest/client/linuxabi"
	"golang.org/x/sys/unix"
)

// TDXQuoteProvider returns a raw TDX quote. go-tdx-guest's QuoteProviders
// (and its mocks) satisfy it.
type TDXQuoteProvider interface {
	IsSupported() error
	GetRawQuote(reportData [64]byte) ([]uint8, error)
}

// tdxDevice gets a quote from /dev/tdx_guest the way kernels before 6.7
// serve it (include/uapi/linux/tdx-guest.h): TDX_CMD_GET_REPORT0 makes the
// TDREPORT for report_data, and TDX_CMD_GET_QUOTE hands it to the VMM's
// quoting service in a shared buffer (a header: version 1, status, in and
// out lengths, then the data) that comes back holding the quote. Newer
// kernels serve quotes through configfs-tsm only.
type tdxDevice struct {
	path string
	// ioctl issues one request; nil is the real device.
	ioctl func(cmd uintptr, arg unsafe.Pointer) error
}

func (d *tdxDevice) quote(reportData [64]byte) ([]byte, error) {
	ioctl := d.ioctl
	if ioctl == nil {
		f, err := os.OpenFile(d.path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", d.path, err)
		}
		defer f.Close()
		ioctl = func(cmd uintptr, arg unsafe.Pointer) error {
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), cmd, uintptr(arg))
			if errno != 0 {
				return errno
			}
			return nil
		}
	}
	rep := &labi.TdxReportReq{ReportData: reportData}
	err := ioctl(labi.IocTdxGetReport, unsafe.Pointer(rep))
	runtime.KeepAlive(rep)
	if err != nil {
		return nil, fmt.Errorf("%s: TDX_CMD_GET_REPORT0: %w", d.path, err)
	}
	hdr := &labi.TdxQuoteHdr{Version: 1, InLen: labi.TdReportSize}
	copy(hdr.Data[:], rep.TdReport[:])
	req := &labi.TdxQuoteReqABI{Buffer: unsafe.Pointer(hdr), Length: labi.ReqBufSize}
	err = ioctl(labi.IocTdxGetQuote, unsafe.Pointer(req))
	runtime.KeepAlive(req)
	runtime.KeepAlive(hdr)
	if err != nil {
		return nil, fmt.Errorf("%s: TDX_CMD_GET_QUOTE: %w", d.path, err)
	}
	switch {
	case hdr.Status == labi.GetQuoteInFlight:
		return nil, fmt.Errorf("%s: the quote request is still in flight", d.path)
	case hdr.Status == labi.GetQuoteServiceUnavailable:
		return nil, fmt.Errorf("%s: the VMM's quoting service is unavailable", d.path)
	case hdr.Status != 0:
		return nil, fmt.Errorf("%s: quote request failed with status 0x%x", d.path, hdr.Status)
	case hdr.OutLen == 0 || int(hdr.OutLen) > len(hdr.Data):
		return nil, fmt.Errorf("%s: quote of %d bytes in a buffer of %d", d.path, hdr.OutLen, len(hdr.Data))
	}
	return append([]byte(nil), hdr.Data[:hdr.OutLen]...), nil
}
