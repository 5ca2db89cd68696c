package steps

import "fmt"

// CheckOptions refuses a restore's options that kvrflow does not know: a
// mode other than copy, link or auto; an engine other than pebble, rocksdb
// or auto; a verification level other than checksum, full or size (""
// means the default of each); a negative number of kept generations. It
// is the one place options are validated: the library checks them before
// a run begins, Precheck again inside it, and the CLI passes them on.
func CheckOptions(mode Mode, engine, verify string, keepOld int) error {
	if _, ok := ParseMode(string(mode)); !ok && mode != "" {
		return fmt.Errorf("%w: --mode %q: want copy, link or auto", ErrBadOption, mode)
	}
	switch engine {
	case "", EnginePebble, EngineRocksDB, EngineAuto:
	default:
		return fmt.Errorf("%w: --engine %q: want pebble, rocksdb or auto", ErrBadOption, engine)
	}
	if _, ok := ParseVerify(verify); !ok {
		return fmt.Errorf("%w: --verify %q: want %s, %s or %s", ErrBadOption, verify, VerifyChecksum, VerifyFull, VerifySize)
	}
	if keepOld < 0 {
		return fmt.Errorf("%w: --keep-old %d: want 0 or more generations", ErrBadOption, keepOld)
	}
	return nil
}
