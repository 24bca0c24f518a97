package logs

import (
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// matchGlob reports whether name matches pattern: path.Match per element,
// where an element "**" matches any number of elements (doublestar).
func matchGlob(pattern, name string) bool {
	return matchParts(strings.Split(filepath.ToSlash(pattern), "/"), strings.Split(filepath.ToSlash(name), "/"))
}

func matchParts(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchParts(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// globFiles lists the paths matching pattern. Without "**" it is
// filepath.Glob; with it, the tree under the pattern's fixed prefix is
// walked.
func globFiles(pattern string, out []string) []string {
	if !strings.Contains(pattern, "**") {
		m, _ := filepath.Glob(pattern) // only ErrBadPattern, checked in Validate
		return append(out, m...)
	}
	parts := strings.Split(filepath.ToSlash(pattern), "/")
	base := []string{}
	for _, p := range parts {
		if strings.ContainsAny(p, `*?[\`) {
			break
		}
		base = append(base, p)
	}
	root := strings.Join(base, "/")
	if root == "" {
		root = "."
		if strings.HasPrefix(pattern, "/") {
			root = "/"
		}
	}
	_ = filepath.WalkDir(filepath.FromSlash(root), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable directories are skipped
		}
		if !d.IsDir() && matchGlob(pattern, p) {
			out = append(out, p)
		}
		return nil
	})
	return out
}
