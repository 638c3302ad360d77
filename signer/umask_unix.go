//go:build unix

package signer

import "syscall"

func umask(m int) int { return syscall.Umask(m) }
