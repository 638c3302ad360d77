package conffile

import "reflect"

// ParseOK reports whether parse filled the shape of C from data: false
// when the document is not TOML or a table has another type.
func ParseOK[C any](data []byte) bool {
	p := planFor(reflect.TypeFor[C](), nil)
	_, ok := parse(data, reflect.New(p.shape).Interface())
	return ok
}

// DecodeAll is Decode returning the configuration even when it found
// problems: filled as far as the document allows.
func DecodeAll[C any](data []byte) (*C, []*Error) {
	v, errs := decode(data, reflect.TypeFor[C]())
	return v.Interface().(*C), errs
}
