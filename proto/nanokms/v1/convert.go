package nanokmsv1

import (
	"fmt"

	"github.com/nanokms/nanokms/nano"
)

// BlockFromNano returns the wire form of b.
func BlockFromNano(b *nano.StateBlock) *Block {
	bal := b.Balance.Bytes()
	out := &Block{
		Account:        append([]byte(nil), b.Account[:]...),
		Previous:       append([]byte(nil), b.Previous[:]...),
		Representative: append([]byte(nil), b.Representative[:]...),
		Balance:        bal[:],
		Link:           append([]byte(nil), b.Link[:]...),
		Work:           uint64(b.Work),
	}
	if !b.Signature.IsZero() {
		out.Signature = append([]byte(nil), b.Signature[:]...)
	}
	return out
}

// ToNano decodes a wire block. field names the block in errors (e.g.
// "head"); each field must have its exact size, and the signature may be
// empty (a template). The error is a *nano.ParseError naming field.member.
func (x *Block) ToNano(field string) (nano.StateBlock, error) {
	var b nano.StateBlock
	if x == nil {
		return b, &nano.ParseError{Field: field, Err: nano.ErrMissing}
	}
	parts := []struct {
		name string
		src  []byte
		dst  []byte
	}{
		{"account", x.GetAccount(), b.Account[:]},
		{"previous", x.GetPrevious(), b.Previous[:]},
		{"representative", x.GetRepresentative(), b.Representative[:]},
		{"link", x.GetLink(), b.Link[:]},
	}
	for _, p := range parts {
		if len(p.src) != len(p.dst) {
			return nano.StateBlock{}, sizeErr(field+"."+p.name, len(p.dst), len(p.src))
		}
		copy(p.dst, p.src)
	}
	if len(x.GetBalance()) != 16 {
		return nano.StateBlock{}, sizeErr(field+".balance", 16, len(x.GetBalance()))
	}
	b.Balance = nano.AmountFromBytes([16]byte(x.GetBalance()))
	switch len(x.GetSignature()) {
	case 0:
	case nano.SignatureSize:
		copy(b.Signature[:], x.GetSignature())
	default:
		return nano.StateBlock{}, sizeErr(field+".signature", nano.SignatureSize, len(x.GetSignature()))
	}
	b.Work = nano.Work(x.GetWork())
	return b, nil
}

func sizeErr(field string, want, got int) error {
	return &nano.ParseError{Field: field, Err: nano.ErrLength, Detail: fmt.Sprintf("want %d bytes, got %d", want, got)}
}
