//go:build !unix

package objstore

import "errors"

// errNotDir matches nothing where ENOTDIR does not exist.
var errNotDir = errors.New("objstore: not a directory")
