package transfers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runnel-ci/runnel/runner/store"
)

type metrics struct {
	cacheLookups *prometheus.CounterVec
	deleted      *prometheus.CounterVec
}

// kinds are the object kinds, for labels that exist from zero.
var kinds = []string{"artifact", "cache", "fetch"}

func newMetrics(reg prometheus.Registerer, db *store.Store) (*metrics, error) {
	m := &metrics{
		cacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_cache_lookups_total",
			Help: "Cache lookups of stages by result: hit (the key), fallback (a fallback prefix), miss.",
		}, []string{"result"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runnel_artifact_store_deleted_total",
			Help: "Objects the sweeper deleted from the artifact store, by kind.",
		}, []string{"kind"}),
	}
	for _, r := range []string{"hit", "fallback", "miss"} {
		m.cacheLookups.WithLabelValues(r)
	}
	for _, k := range kinds {
		m.deleted.WithLabelValues(k)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.cacheLookups, m.deleted, &storedCollector{db: db}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// storedCollector reports what the artifact store holds, from the
// database, at each scrape.
type storedCollector struct{ db *store.Store }

var (
	storedBytes = prometheus.NewDesc("runnel_artifact_store_bytes",
		"Bytes kept in the artifact store, by kind (artifact, cache, fetch).", []string{"kind"}, nil)
	storedObjects = prometheus.NewDesc("runnel_artifact_store_objects",
		"Objects kept in the artifact store, by kind (artifact, cache, fetch).", []string{"kind"}, nil)
)

func (c *storedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storedBytes
	ch <- storedObjects
}

func (c *storedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.db.ObjectStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(storedBytes, err)
		return
	}
	for _, k := range kinds {
		ch <- prometheus.MustNewConstMetric(storedBytes, prometheus.GaugeValue, float64(st[k].Bytes), k)
		ch <- prometheus.MustNewConstMetric(storedObjects, prometheus.GaugeValue, float64(st[k].Count), k)
	}
}
