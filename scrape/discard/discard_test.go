package discard

import (
	"context"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// A new series gets a non-zero ref, the same one for the same labels, and
// a known ref comes back unchanged: Prometheus' cache then skips the
// labels on the next scrape, as it does with a real storage.
func TestRefsAreStable(t *testing.T) {
	app := Appendable{}.AppenderV2(context.Background())
	ls := labels.FromStrings("__name__", "up", "job", "j")
	r1, err := app.Append(0, ls, 0, 1, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NotZero(t, r1)
	r2, err := app.Append(0, ls, 0, 2, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.Equal(t, r1, r2)
	r3, err := app.Append(r1, ls, 0, 3, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.Equal(t, r1, r3)
	require.NotEqual(t, r1, mustRef(t, app, labels.FromStrings("__name__", "up", "job", "k")))
	require.NoError(t, app.Commit())
}

func mustRef(t *testing.T, app storage.AppenderV2, ls labels.Labels) storage.SeriesRef {
	t.Helper()
	r, err := app.Append(0, ls, 0, 1, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	return r
}
