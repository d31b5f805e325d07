package resourceguard

import "testing"

func TestCheckMethodScopeKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"tools/call": true, "tools/call:delete_todo": true, "prompts/get:summary": true,
		"resources/read:file:///a/b": true, "notifications/initialized": true, "tools/list": true,
		"tool/call:delete_todo": false, "tools/cal": false, "": false, ":x": false,
		"tools/call:": false, "tools/list:x": false, "Tools/Call": false,
	} {
		if got := CheckMethodScopeKey(key) == ""; got != ok {
			t.Errorf("CheckMethodScopeKey(%q) usable = %v, want %v (%s)", key, got, ok, CheckMethodScopeKey(key))
		}
	}
}
