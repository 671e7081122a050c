package edge

import "tigerchat/model/chat"

// validID mirrors the chat id rule: 1 to chat.IDSizeMax bytes of
// [A-Za-z0-9._-]. The state machine checks again; the edge checks first so
// that bad ids never reach the cluster.
func validID(s string) bool {
	if len(s) < 1 || len(s) > chat.IDSizeMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}
