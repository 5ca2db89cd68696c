package remote

import (
	"strings"
	"testing"
)

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"s3://b/p?endpoint=http://h:9&use_path_style=true":  "s3://b/p?endpoint=http://h:9&use_path_style=true",
		"s3://AKIA:hunter2secret@b/p":                       "s3://b/p",
		"azblob://c/p?sig=hunter2secret&sv=2020":            "azblob://c/p?sig=REDACTED&sv=2020",
		"s3://b/p?aws_secret_access_key=hunter2secret":      "s3://b/p?aws_secret_access_key=REDACTED",
		"s3://AKIA:hunter2secret@b/%zz?token=hunter2secret": "s3://REDACTED@b/%zz",
		"file:///backups/x":                                 "file:///backups/x",
	} {
		got := SafeURL(in)
		if got != want || strings.Contains(got, "hunter2secret") {
			t.Errorf("SafeURL(%q) = %q, want %q", in, got, want)
		}
	}
}
