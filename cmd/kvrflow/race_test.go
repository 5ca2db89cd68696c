//go:build race

package main

// raceEnabled builds the kvrflow binary under test with -race too.
const raceEnabled = true
