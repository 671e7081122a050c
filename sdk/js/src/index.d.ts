export type Code = string;

export declare const CODES: readonly string[];
export declare const SDK_CODES: readonly string[];
export declare const LIMITS: Readonly<{ idMax: number; bodyMax: number; postBatchMax: number; frameMax: number; readLimitMax: number; subscriptionMax: number }>;
export declare const ZERO_HASH: string;

export declare class TigerChatError extends Error {
  constructor(code: Code, message?: string, opts?: { retryAfterMs?: number; local?: boolean });
  readonly code: Code;
  readonly retryAfterMs: number;
  /** true when the SDK refused the call before sending anything */
  readonly local: boolean;
  readonly temporary: boolean;
}

export declare class Truncated {
  constructor(from: number, to: number);
  readonly from: number;
  readonly to: number;
}

export interface Message {
  room: string;
  thread: number;
  seq: number;
  hash: string;
  prev_hash: string;
  author: string;
  time: string;
  time_ns: string;
  /** the idempotency key of the post that made it (not hashed) */
  key?: string;
  body?: string;
  body_b64?: string;
}

export interface PostResult {
  room: string;
  thread: number;
  seq: number;
  hash: string;
  time: string;
  time_ns: string;
  duplicate: boolean;
  key: string;
  attempts: number;
}

export interface Log {
  room: string;
  thread: number;
  head_seq: number;
  head_hash: string;
  first_seq: number;
  more: boolean;
  messages: Message[];
}

export type SubscriptionEvent =
  | { type: "message"; room: string; thread: number; message: Message }
  | { type: "truncated"; room: string; thread: number; from: number; to: number }
  | { type: "unsubscribed"; room: string; thread: number; error: TigerChatError }
  | { type: "hash_mismatch"; room: string; thread: number; message: Message; error: TigerChatError };

export declare class Subscription implements AsyncIterable<SubscriptionEvent> {
  readonly room: string;
  readonly thread: number;
  /** the last seq delivered (or skipped by a truncation) */
  readonly last: number | null;
  on(fn: (ev: SubscriptionEvent) => void): () => void;
  next(): Promise<IteratorResult<SubscriptionEvent>>;
  [Symbol.asyncIterator](): AsyncIterator<SubscriptionEvent>;
  close(): Promise<void>;
}

export interface ClientOptions {
  url: string;
  token?: string;
  tokenFunc?: () => Promise<string>;
  refreshBeforeMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  reconnectMax?: number;
  postTimeoutMs?: number;
  postFramesInFlight?: number;
  batchMax?: number;
  bodyMax?: number;
  callTimeoutMs?: number;
  verifyHashes?: boolean;
  WebSocket?: unknown;
  logf?: (msg: string) => void;
}

export interface Stats {
  connects: number; reconnects: number; closes4001: number; closes4008: number; closes1001: number;
  rateLimited: number; unavailable: number; retries: number; postFrames: number; batchFrames: number; batchPosts: number; refreshes: number;
}

export declare class Client {
  static connect(opts: ClientOptions): Promise<Client>;
  readonly tenant: string;
  readonly user: string;
  readonly stats: Stats;
  call(cmd: Record<string, unknown>, opts?: { signal?: AbortSignal }): Promise<any>;
  ping(): Promise<{}>;
  whoami(): Promise<{ tenant: string; user: string; rooms: unknown; expires: string }>;
  createRoom(room: string, opts?: { private?: boolean; audit?: boolean; retention?: number }): Promise<{ room: string; members: number }>;
  join(room: string): Promise<{ room: string; members: number }>;
  leave(room: string): Promise<{ room: string; members: number }>;
  invite(room: string, user: string): Promise<{ room: string; members: number }>;
  openDM(peer: string): Promise<{ room: string; peer: string; created: boolean }>;
  snapshot(room: string, opts?: { thread?: number; limit?: number }): Promise<{ info: Record<string, unknown>; log: Log }>;
  historyPage(room: string, q?: { thread?: number; since?: number; from?: number; before?: number; limit?: number }): Promise<Log>;
  history(room: string, opts?: { thread?: number; backward?: boolean; start?: number; pageSize?: number }): AsyncGenerator<Message | Truncated>;
  subscribe(room: string, opts?: { thread?: number; since?: number }): Promise<Subscription>;
  post(room: string, body: string, opts?: { key?: string; thread?: number; signal?: AbortSignal }): Promise<PostResult>;
  close(): void;
}

export declare function newKey(): string;
export declare function messageHash(tenant: string, m: Message): Promise<string>;
export declare function verifyMessage(tenant: string, prevHash: string, m: Message): Promise<void>;
export declare function verifyChain(tenant: string, prevHash: string, msgs: Message[]): Promise<void>;
