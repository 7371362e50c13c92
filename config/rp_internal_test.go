package config

import (
	"regexp"
	"strconv"
	"testing"
)

func TestRangePatternExhaustive(t *testing.T) {
	for _, r := range [][2]int{{0, 0}, {0, 9}, {1, 10}, {1, 65535}, {0, 255}, {0, 32}, {0, 128}, {1, 100}, {7, 8}, {13, 4567}, {99, 100}, {100, 199}, {1, 600}, {1, 31536000 / 60}} {
		re := regexp.MustCompile("^" + rangePattern(r[0], r[1]) + "$")
		for n := 0; n <= r[1]*10+20 && n < 700000; n++ {
			for _, s := range []string{strconv.Itoa(n), "0" + strconv.Itoa(n)} {
				want := s == strconv.Itoa(n) && n >= r[0] && n <= r[1]
				if re.MatchString(s) != want {
					t.Fatalf("%v %q: got %v", r, s, !want)
				}
			}
		}
	}
}
