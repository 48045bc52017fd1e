//go:build !linux

package serve

func monotonicUsec() string { return "" }
