// Package chat is TigerChat's replicated state machine: the deterministic
// heart that every replica of a shard applies in the same order.
//
// # Model
//
// A shard holds rooms of many tenants. A room is keyed by (tenant, room id),
// so one tenant can never name another tenant's room: a guessed id of a
// foreign room answers CodeUnknownRoom, exactly as an id that exists
// nowhere (a distinct "foreign room" code would be an existence oracle).
//
//   - Public rooms: any user of the tenant may read, join and snapshot them;
//     posting needs membership.
//   - Private rooms: only members read and post; a member invites others.
//   - DMs: private rooms with the id DirectRoomID(a, b), derived from the
//     sorted pair, created by the first OpenDirect from either side; their
//     membership is fixed (Join, Leave, Invite answer CodeDirectRoom).
//   - Threads: a thread is a child log under a main-log message (its parent
//     seq), with its own gapless seq and hash chain.
//   - Audit rooms are immutable: no retention. Other rooms may keep only the
//     last RetentionCount messages of each log. Nothing rewrites a committed
//     message; an edit or deletion, when added, will be a new message.
//
// Every message is (tenant, room, thread, seq, prev_hash, hash, author,
// time, key, body); see Message for the hash and VerifyChain to check a run.
// Time is the prepare timestamp given to Apply, never a clock. Key is the
// post's idempotency key, kept so a reader can match a message to its
// post; it is not hashed.
//
// # Idempotency
//
// A post carries an idempotency key. While the key is in the room's
// idempotency window, posting it again (from any log of the room) returns
// the original seq, hash and time with Duplicate set, and creates nothing.
// The window forgets a key Limits.IdempotencyWindowNs (24 h) after its
// message's prepare timestamp, or earlier once the shard has remembered
// Limits.DedupKeysMax newer keys (the bound that keeps the index's memory
// within the cache); a forgotten key is accepted again as a new message.
// The keys live in a log of the checkpoint (keylog.go), so the guarantee
// survives restarts, view changes and state sync.
//
// # Post batches
//
// OperationPostBatch is internal, between the edge and the cluster: the
// edge queues the posts of all its connections per shard and sends what
// waits as one request whenever one of its VSR sessions is free, so that
// the per-request costs (request and reply messages, transport frames,
// client session bookkeeping) are paid once per batch, not per post. A
// batch holds 1 to Limits.PostBatchCountMax posts of any tenants, users and
// rooms of the shard; each is applied in order exactly as a lone
// OperationPost (validation, membership, dedup window, its own Code), and
// the reply lists each post's reply in order. A refused post fails alone.
// The batch is one VSR request: its reply is kept in the client table
// (Limits.ReplySizeMin bounds it; CheckConfig checks it), so a retried
// batch gets back the original seqs and hashes; each post's idempotency
// key also protects it when a batch is resent as a new request.
//
// # Storage
//
// Every message is kept until a room's retention or the room's deletion
// removes it (docs/storage.md). Between checkpoints a log's new messages
// are in memory; each checkpoint writes them to message blocks in the grid
// and the rooms' changed items to the tables of tables.go. Reads page
// through blocks and memory alike; LogView.FirstSeq tells the client where
// a log starts, and ReadGap which wanted seqs a read could not return.
//
// # Limits
//
// Protocol constants (IDSizeMax, IdempotencyKeySizeMax, ReadLimitMax) and
// per-deployment Limits bound everything, and Limits.CheckConfig checks a
// vsr.Config.
//
// # Errors
//
// Every refusal is a distinct Code. Prepare refuses malformed encodings,
// ids, sizes and ranges without consensus (Validate); Apply refuses the
// stateful cases with a one-byte error reply and no state change.
package chat
