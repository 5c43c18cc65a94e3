package peer

import (
	"crypto/sha256"
	"encoding/hex"
)

// Token is the proof a cluster member presents with VELA PEER: a hash of the cluster secret, so
// the secret itself never crosses the network.
func Token(secret string) string {
	sum := sha256.Sum256([]byte("vela-peer:" + secret))
	return hex.EncodeToString(sum[:])
}
