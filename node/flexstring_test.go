package node

import (
	"encoding/json"
	"testing"
)

// TestConfirmedAsStringOrBool: "confirmed" reads the same whether a node
// prints it as a string (older nodes) or a boolean (newer ones).
func TestConfirmedAsStringOrBool(t *testing.T) {
	for in, want := range map[string]string{`"true"`: "true", `true`: "true", `"false"`: "false", `false`: "false"} {
		var v struct {
			C *flexString `json:"confirmed"`
		}
		if err := json.Unmarshal([]byte(`{"confirmed":`+in+`}`), &v); err != nil || v.C == nil || string(*v.C) != want {
			t.Errorf("%s: %v %v", in, v.C, err)
		}
	}
	var v struct {
		C *flexString `json:"confirmed"`
	}
	if err := json.Unmarshal([]byte(`{"confirmed": 1}`), &v); err == nil {
		t.Error("a number was accepted")
	}
}
