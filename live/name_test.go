package live

import (
	"regexp"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	part := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$`)
	long := strings.Repeat("a", 128)
	for name, want := range map[string]bool{
		"studio": true, "a": true, "cam-1.main_x~y": true, long: true,
		"meet/alice": true, long + "/" + long: true, "9/9": true,
		"": false, "/": false, "a/": false, "/a": false, "a//b": false, "a/b/c": false,
		long + "a": false, "a/" + long + "b": false, ".a": false, "a/.b": false, "..": false, "a/..": false,
		"-a": false, "~a": false, "a b": false, "a%2fb": false, "a\\b": false, "é": false, "a\x00": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
		// One part: exactly today's pattern.
		if !strings.Contains(name, "/") && ValidName(name) != part.MatchString(name) {
			t.Errorf("ValidName(%q) disagrees with %s", name, part)
		}
	}
}
