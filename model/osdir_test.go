package model_test

import "os"

// osDirFS reads model/ itself; tests may use the OS, model code may not.
var osDirFS = os.DirFS(".")
