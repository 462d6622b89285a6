// Package bolttest maps the bytes of an intact bbolt file to what they hold
// (meta pages, the freelist, page headers, elements, keys, values), so that
// damage tests can flip bits where bbolt reads and say where each flip
// landed. It reads files tests wrote themselves and trusts them; it is not
// a checker (catalog.Open is).
package bolttest

import (
	"encoding/binary"
	"fmt"
)

// Kinds of byte.
const (
	Meta           = "meta"
	Freelist       = "freelist"
	PageHeader     = "page header"
	BranchElement  = "branch element"
	BranchKey      = "branch key"
	LeafElement    = "leaf element"
	Key            = "key"
	Value          = "value"
	BucketHeader   = "bucket header"
	InlinePrefix   = "inline "
	pageHeaderSize = 16
	elementSize    = 16
)

// Layout describes an intact bbolt file.
type Layout struct {
	PageSize int
	// Kind maps each byte bbolt reads through the active meta page to its
	// kind; bytes not in it are free pages or page slack.
	Kind map[int]string
	// Pages maps each reachable page id to its type ("branch", "leaf",
	// "freelist").
	Pages map[uint64]string
	// BranchChildren lists, for each branch element, the offset of its
	// child page id field and the page it points to.
	BranchChildren []Child
}

// Child is a branch element's child pointer.
type Child struct {
	Off    int    // offset of the 8-byte page id in the file
	Parent uint64 // the branch page
	Page   uint64 // the child page
}

// Read maps b, the bytes of an intact bbolt file.
func Read(b []byte) (*Layout, error) {
	le := binary.LittleEndian
	if len(b) < 2*1024 {
		return nil, fmt.Errorf("bolttest: %d bytes is no bbolt file", len(b))
	}
	l := &Layout{PageSize: int(le.Uint32(b[pageHeaderSize+8:])), Kind: map[int]string{}, Pages: map[uint64]string{}}
	ps := l.PageSize
	mark := func(from, to int, kind string) {
		for i := from; i < to; i++ {
			l.Kind[i] = kind
		}
	}
	// The meta page with the higher txid is the active one; both are read.
	meta := 0
	if le.Uint64(b[ps+pageHeaderSize+48:]) > le.Uint64(b[pageHeaderSize+48:]) {
		meta = ps
	}
	mark(0, pageHeaderSize+64, Meta)
	mark(ps, ps+pageHeaderSize+64, Meta)
	if fl := le.Uint64(b[meta+pageHeaderSize+32:]); fl != ^uint64(0) {
		p := int(fl) * ps
		count := int(le.Uint16(b[p+10:]))
		mark(p, p+pageHeaderSize+count*8, Freelist)
		l.Pages[fl] = "freelist"
	}
	var walk func(p, id int, prefix string)
	walk = func(p, id int, prefix string) {
		flags := le.Uint16(b[p+8:])
		count := int(le.Uint16(b[p+10:]))
		mark(p, p+pageHeaderSize, prefix+PageHeader)
		if id >= 0 {
			l.Pages[uint64(id)] = map[uint16]string{1: "branch", 2: "leaf"}[flags]
		}
		for i := 0; i < count; i++ {
			e := p + pageHeaderSize + i*elementSize
			if flags == 0x01 {
				mark(e, e+elementSize, prefix+BranchElement)
				pos, ksize := int(le.Uint32(b[e:])), int(le.Uint32(b[e+4:]))
				mark(e+pos, e+pos+ksize, prefix+BranchKey)
				child := int(le.Uint64(b[e+8:]))
				l.BranchChildren = append(l.BranchChildren, Child{Off: e + 8, Parent: uint64(id), Page: uint64(child)})
				walk(child*ps, child, "")
				continue
			}
			mark(e, e+elementSize, prefix+LeafElement)
			eflags, pos := le.Uint32(b[e:]), int(le.Uint32(b[e+4:]))
			ksize, vsize := int(le.Uint32(b[e+8:])), int(le.Uint32(b[e+12:]))
			mark(e+pos, e+pos+ksize, prefix+Key)
			v := e + pos + ksize
			if eflags&1 == 0 {
				mark(v, v+vsize, prefix+Value)
				continue
			}
			mark(v, v+16, prefix+BucketHeader)
			if root := int(le.Uint64(b[v:])); root != 0 {
				walk(root*ps, root, "")
			} else {
				walk(v+16, -1, InlinePrefix)
			}
		}
	}
	root := int(le.Uint64(b[meta+pageHeaderSize+16:]))
	walk(root*ps, root, "")
	return l, nil
}
