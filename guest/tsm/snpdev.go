package tsm

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	labi "github.com/google/go-sev-guest/client/linuxabi"
	"golang.org/x/sys/unix"

	"github.com/sealroot/sealroot/wire/snpreport"
)

// snpDevice gets extended SNP reports from /dev/sev-guest with the
// SNP_GET_EXT_REPORT ioctl (include/uapi/linux/sev-guest.h): the report
// request (report_data, VMPL) plus a buffer for the host's certificate
// table. The kernel answers a buffer that is too small (none, at first)
// with EIO, the VMM error "invalid length" in the upper half of exitinfo2,
// and the length it needs; the request is then made again with that much
// room.
type snpDevice struct {
	path string
	// ioctl issues one guest request; nil is the real device.
	ioctl func(cmd uintptr, msg *labi.SnpUserGuestRequest) error
}

// snpVMMErrInvalidLen is SNP_GUEST_VMM_ERR_INVALID_LEN, the VMM error (the
// upper 32 bits of exitinfo2) for a certificate buffer that is too small.
const snpVMMErrInvalidLen = 1

// snpMaxCerts bounds the certificate table the guest accepts from the host.
const snpMaxCerts = 1 << 20

func (d *snpDevice) IsSupported() bool {
	if d.ioctl != nil {
		return true
	}
	f, err := os.OpenFile(d.path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func (d *snpDevice) GetRawQuote(reportData [64]byte) ([]uint8, error) {
	return d.GetRawQuoteAtLevel(reportData, 0)
}

func (d *snpDevice) GetRawQuoteAtLevel(reportData [64]byte, vmpl uint) ([]uint8, error) {
	ioctl := d.ioctl
	if ioctl == nil {
		f, err := os.OpenFile(d.path, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		ioctl = func(cmd uintptr, msg *labi.SnpUserGuestRequest) error { return snpIoctl(f, cmd, msg) }
	}
	var certs []byte
	for attempt := 0; attempt < 3; attempt++ {
		req := &labi.SnpExtendedReportReq{
			Data:        labi.SnpReportReqABI{ReportData: reportData, Vmpl: uint32(vmpl)},
			Certs:       certs,
			CertsLength: uint32(len(certs)),
		}
		resp := &labi.SnpReportRespABI{}
		msg := &labi.SnpUserGuestRequest{ReqData: req, RespData: resp}
		err := ioctl(labi.IocSnpGetExtendedReport, msg)
		if err != nil && errors.Is(err, unix.EIO) && msg.FwErr>>32 == snpVMMErrInvalidLen {
			if req.CertsLength <= uint32(len(certs)) || req.CertsLength > snpMaxCerts {
				return nil, fmt.Errorf("%s: the host asks for a certificate buffer of %d bytes (had %d, at most %d)", d.path, req.CertsLength, len(certs), snpMaxCerts)
			}
			certs = make([]byte, req.CertsLength)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: SNP_GET_EXT_REPORT: %w (firmware error 0x%x, VMM error 0x%x)", d.path, err, uint32(msg.FwErr), msg.FwErr>>32)
		}
		if int(resp.ReportSize) < snpreport.ReportSize || int(resp.ReportSize) > len(resp.Data) {
			return nil, fmt.Errorf("%s: report of %d bytes, want %d", d.path, resp.ReportSize, snpreport.ReportSize)
		}
		if int(req.CertsLength) > len(certs) {
			return nil, fmt.Errorf("%s: certificate table of %d bytes in a buffer of %d", d.path, req.CertsLength, len(certs))
		}
		out := append([]byte(nil), resp.Data[:snpreport.ReportSize]...)
		return append(out, certs[:req.CertsLength]...), nil
	}
	return nil, fmt.Errorf("%s: the certificate table kept growing", d.path)
}

// snpIoctl issues msg on the device f: the request and response cross the
// ABI through linuxabi's conversions, which write the results back.
func snpIoctl(f *os.File, cmd uintptr, msg *labi.SnpUserGuestRequest) error {
	conv := msg.ABI()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), cmd, uintptr(conv.Pointer()))
	ferr := conv.Finish(msg)
	runtime.KeepAlive(msg)
	if errno != 0 {
		return errno
	}
	return ferr
}
