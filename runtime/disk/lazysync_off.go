//go:build !tigerchat_unsafe_lazysync

package disk

// unsafeLazySync does nothing in a real build; see lazysync_unsafe.go.
func unsafeLazySync(*Disk) {}
