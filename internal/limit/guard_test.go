package limit_test

import (
	"testing"

	"github.com/thingif/thingif/internal/limit"
	"github.com/thingif/thingif/internal/limit/limittest"
)

func TestGuard(t *testing.T) {
	limittest.Run(t, func(t *testing.T, cfg limit.Config) limit.Guard { return limit.New(cfg) })
}
