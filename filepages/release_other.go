//go:build !linux

package filepages

// ReleaseExecutable does nothing outside Linux.
func ReleaseExecutable() (int64, error) { return 0, nil }

// ReleaseShared does nothing outside Linux.
func ReleaseShared(string, string) (int64, error) { return 0, nil }
