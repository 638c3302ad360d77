package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MaxTextfileSize bounds what ReadTextfile reads: a nanokms textfile holds
// a few series, far below it.
const MaxTextfileSize = 64 << 10

// ErrTextfileGarbled is wrapped by the errors of ParseTextfile and
// ReadTextfile when the file is not a well-formed textfile of ours: not
// in the text exposition format, over MaxTextfileSize, not a regular
// file, or a series given twice.
var ErrTextfileGarbled = errors.New("metrics: textfile garbled")

// ReadTextfile reads back a textfile that WriteTextfile wrote, for a
// command that carries a value from one run to the next. It opens path
// without following a symbolic link and reads only a regular file of at
// most MaxTextfileSize bytes. A missing file returns an error wrapping
// fs.ErrNotExist; anything else that is not a file ParseTextfile accepts
// returns an error wrapping ErrTextfileGarbled.
func ReadTextfile(path string) (map[string]*dto.MetricFamily, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%w: %s is a symbolic link", ErrTextfileGarbled, path)
		}
		return nil, fmt.Errorf("metrics: reading textfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("metrics: reading textfile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (%v)", ErrTextfileGarbled, path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxTextfileSize+1))
	if err != nil {
		return nil, fmt.Errorf("metrics: reading textfile %s: %w", path, err)
	}
	fams, err := ParseTextfile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fams, nil
}

// ParseTextfile parses data in the Prometheus text exposition format,
// strictly: at most MaxTextfileSize bytes, every line well formed, no
// series (a name and its label set) given twice. Its errors wrap
// ErrTextfileGarbled; on error it returns nil.
func ParseTextfile(data []byte) (map[string]*dto.MetricFamily, error) {
	if len(data) > MaxTextfileSize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTextfileGarbled, MaxTextfileSize)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTextfileGarbled, err)
	}
	for name, mf := range fams {
		seen := map[string]bool{}
		for _, m := range mf.GetMetric() {
			key, ok := labelKey(m)
			if !ok {
				return nil, fmt.Errorf("%w: a series of %s repeats a label", ErrTextfileGarbled, name)
			}
			if seen[key] {
				return nil, fmt.Errorf("%w: %s%s is given twice", ErrTextfileGarbled, name, key)
			}
			seen[key] = true
		}
	}
	return fams, nil
}

// labelKey is m's label set as a string, in a canonical order; false if
// a label name is repeated.
func labelKey(m *dto.Metric) (string, bool) {
	ls := model.LabelSet{}
	for _, lp := range m.GetLabel() {
		ls[model.LabelName(lp.GetName())] = model.LabelValue(lp.GetValue())
	}
	return ls.String(), len(ls) == len(m.GetLabel())
}
