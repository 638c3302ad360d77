package signer

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/nano"
)

// The state file's account and signed-block records are a compact binary
// encoding, decoded on every request:
//
//	block  = account[32] ‖ previous[32] ‖ representative[32] ‖ balance[16] ‖
//	         link[32] ‖ signature[64] ‖ u64 work             (216 bytes)
//	account record = 0x01 ‖ account[32] ‖ u32 index ‖ u64 height ‖
//	         u8 opened ‖ [block ‖ frontier hash[32]] ‖ u16 len ‖ wallet
//	account record with the frontier before (version 2) =
//	         0x02 ‖ account[32] ‖ u32 index ‖ u64 height ‖ 0x01 ‖ block ‖
//	         frontier hash[32] ‖ u16 len ‖ wallet ‖
//	         prior block ‖ prior hash[32] ‖ u64 prior height
//	account record of a frontier unconfirmed (versions 3 and 4) = as
//	         versions 1 and 2, with 0x03 and 0x04 for the first byte
//	signed block   = 0x01 ‖ block ‖ hash[32] ‖ u8 len ‖ request id
//
// Integers are big-endian. A record is written as version 2 exactly when
// it has a Prior (what a release returns to), and as version 3 (4 with a
// Prior) exactly when its frontier is unconfirmed (restored from a
// backup: restore.go), so each record has one encoding; version 1
// records, written before releases existed, are read as they are. A
// release before unconfirmed frontiers reads versions 3 and 4 as corrupt
// records: it signs nothing for such an account.
const (
	recordVersion                 = 1
	recordVersionPrior            = 2
	recordVersionUnconfirmed      = 3
	recordVersionPriorUnconfirmed = 4
	blockLen                      = 32*3 + 16 + 32 + 64 + 8
	priorLen                      = blockLen + 32 + 8
)

// recordLayout says, from an account record's first byte, whether it
// carries a prior frontier and whether its frontier is unconfirmed; ok is
// false for a byte that is no version.
func recordLayout(version byte) (withPrior, unconfirmed, ok bool) {
	switch version {
	case recordVersion:
		return false, false, true
	case recordVersionPrior:
		return true, false, true
	case recordVersionUnconfirmed:
		return false, true, true
	case recordVersionPriorUnconfirmed:
		return true, true, true
	}
	return false, false, false
}

// errCorrupt is returned for a record that does not decode.
var errCorrupt = errors.New("signer: corrupt record in the state file")

func appendBlock(dst []byte, b *nano.StateBlock) []byte {
	dst = append(dst, b.Account[:]...)
	dst = append(dst, b.Previous[:]...)
	dst = append(dst, b.Representative[:]...)
	bal := b.Balance.Bytes()
	dst = append(dst, bal[:]...)
	dst = append(dst, b.Link[:]...)
	dst = append(dst, b.Signature[:]...)
	return binary.BigEndian.AppendUint64(dst, uint64(b.Work))
}

func readBlock(src []byte) (nano.StateBlock, []byte, error) {
	var b nano.StateBlock
	if len(src) < blockLen {
		return b, nil, errCorrupt
	}
	copy(b.Account[:], src[0:32])
	copy(b.Previous[:], src[32:64])
	copy(b.Representative[:], src[64:96])
	b.Balance = nano.AmountFromBytes([16]byte(src[96:112]))
	copy(b.Link[:], src[112:144])
	copy(b.Signature[:], src[144:208])
	b.Work = nano.Work(binary.BigEndian.Uint64(src[208:216]))
	return b, src[blockLen:], nil
}

// MarshalBinary encodes r for the state file.
func (r *AccountRecord) MarshalBinary() ([]byte, error) {
	if len(r.Wallet) > 0xFFFF {
		return nil, fmt.Errorf("signer: wallet label of %d bytes", len(r.Wallet))
	}
	version := byte(recordVersion)
	if r.Prior != nil {
		if r.Frontier == nil {
			return nil, errors.New("signer: an account record with a prior frontier but no frontier")
		}
		version = recordVersionPrior
	}
	if r.Unconfirmed {
		version += recordVersionUnconfirmed - recordVersion
	}
	out := make([]byte, 0, 1+32+4+8+1+blockLen+32+2+len(r.Wallet)+priorLen)
	out = append(out, version)
	out = append(out, r.Account[:]...)
	out = binary.BigEndian.AppendUint32(out, r.Index)
	out = binary.BigEndian.AppendUint64(out, r.Height)
	if r.Frontier != nil {
		out = append(out, 1)
		out = appendBlock(out, r.Frontier)
		out = append(out, r.FrontierHash[:]...)
	} else {
		out = append(out, 0)
	}
	out = binary.BigEndian.AppendUint16(out, uint16(len(r.Wallet)))
	out = append(out, r.Wallet...)
	if p := r.Prior; p != nil {
		out = appendBlock(out, &p.Block)
		out = append(out, p.Hash[:]...)
		out = binary.BigEndian.AppendUint64(out, p.Height)
	}
	return out, nil
}

// UnmarshalBinary decodes a record written by MarshalBinary.
func (r *AccountRecord) UnmarshalBinary(src []byte) error {
	var out AccountRecord
	if len(src) < 1+32+4+8+1 {
		return errCorrupt
	}
	withPrior, unconfirmed, ok := recordLayout(src[0])
	if !ok {
		return errCorrupt
	}
	out.Unconfirmed = unconfirmed
	copy(out.Account[:], src[1:33])
	out.Index = binary.BigEndian.Uint32(src[33:37])
	out.Height = binary.BigEndian.Uint64(src[37:45])
	opened, rest := src[45], src[46:]
	switch opened {
	case 0:
		if withPrior {
			return errCorrupt
		}
	case 1:
		b, tail, err := readBlock(rest)
		if err != nil || len(tail) < 32 {
			return errCorrupt
		}
		out.Frontier = &b
		copy(out.FrontierHash[:], tail[:32])
		rest = tail[32:]
	default:
		return errCorrupt
	}
	var tail int
	if withPrior {
		tail = priorLen
	}
	if len(rest) < 2 || len(rest) != 2+int(binary.BigEndian.Uint16(rest))+tail {
		return errCorrupt
	}
	n := 2 + int(binary.BigEndian.Uint16(rest))
	out.Wallet = string(rest[2:n])
	if withPrior {
		b, p, err := readBlock(rest[n:])
		if err != nil {
			return errCorrupt
		}
		out.Prior = &PriorFrontier{Block: b, Hash: nano.Hash(p[:32]), Height: binary.BigEndian.Uint64(p[32:40])}
	}
	*r = out
	return nil
}

// MarshalBinary encodes sb for the state file.
func (sb *SignedBlock) MarshalBinary() ([]byte, error) {
	if len(sb.RequestID) > 0xFF {
		return nil, fmt.Errorf("signer: request id of %d bytes", len(sb.RequestID))
	}
	out := make([]byte, 0, 1+blockLen+32+1+len(sb.RequestID))
	out = append(out, recordVersion)
	out = appendBlock(out, &sb.Block)
	out = append(out, sb.Hash[:]...)
	out = append(out, byte(len(sb.RequestID)))
	return append(out, sb.RequestID...), nil
}

// UnmarshalBinary decodes a record written by MarshalBinary.
func (sb *SignedBlock) UnmarshalBinary(src []byte) error {
	if len(src) < 1 || src[0] != recordVersion {
		return errCorrupt
	}
	b, rest, err := readBlock(src[1:])
	if err != nil || len(rest) < 33 || len(rest) != 33+int(rest[32]) {
		return errCorrupt
	}
	*sb = SignedBlock{Block: b, Hash: nano.Hash(rest[:32]), RequestID: string(rest[33:])}
	return nil
}
