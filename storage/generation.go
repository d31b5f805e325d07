package storage

// RevocationGeneration is implemented by backends that can tell, exactly and
// at no cost, that nothing ending a token's validity (a grant revoked or
// deleted, a client disabled, changed or deleted) has been written since an
// earlier call: the number changes after every such commit. Consumers may
// cache "is this grant still active" answers for as long as the number stays
// the same. Only a single-process backend (bbolt) can promise this; a shared
// database cannot see other instances' writes and does not implement it.
type RevocationGeneration interface {
	RevocationGeneration() uint64
}
