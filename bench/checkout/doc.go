// Package checkoutbench measures agents/workspace's checkout (git CLI,
// per-repository cache) against a go-git PlainClone of the same commit.
// Results and the command are in docs/benchmarks.md, section Checkout.
package checkoutbench
