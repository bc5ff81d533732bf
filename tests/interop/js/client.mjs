// Interop client: a js-libp2p node (TCP + Noise + Yamux) that talks to a p2p-orchestrator node.
//
//   node client.mjs
//     stdout: {"peer_id": "<base58>"}
//     stdin:  {"address": "/ip4/127.0.0.1/tcp/N/p2p/<id>", "service": "<name>"}   (one line)
//     stdout: {"rpc": <decoded answer of orchestrator/list_services>}
//     stdout: {"archive_hash": "<hex>", "size": N, "chunks": K}
//   exit 0; on any failure {"error": "..."} and exit 1.  Overall timeout: CLIENT_TIMEOUT_MS (30 s).
//
// Wire format (docs/protocol.md sections 1-4 and "Transfer protocol"): every message is one frame,
// a 4-byte big-endian length then one CBOR map with text keys, no tags, no indefinite lengths.

import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { decode, encode } from 'cborg'
import { createLibp2p } from 'libp2p'

// Node 20 lacks Promise.withResolvers (Node >= 22), which it-queue 1.x (libp2p's peer store lock,
// via mortice 3.3) calls at run time.  Defined here, before any libp2p code runs.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const RPC_PROTOCOL = '/p2p-orchestrator/rpc/1.0.0'
const TRANSFER_PROTOCOL = '/p2p-orchestrator/transfer/1.0.0'
const RPC_MAX_FRAME = 4 * 1024 * 1024 // DEFAULT_MAX_FRAME_BYTES
const TRANSFER_MAX_FRAME = 4 * 1024 * 1024 + 64 * 1024 // TRANSFER_FRAME_BYTES
const MIN_CHUNK_SIZE = 65536
const MAX_CHUNK_SIZE = 4 * 1024 * 1024
const MAX_CHUNKS = 65536
const MAX_WANTS = 16 // chunks asked and undelivered, per sender (too_many_wants beyond)
const WINDOW = Math.max(1, Math.min(MAX_WANTS, Number(process.env.CLIENT_WINDOW) || 4)) // the node's own default is 4
const MAX_CORRUPT = 3 // corrupt chunks tolerated from a sender, each asked again
const TIMEOUT_MS = Number(process.env.CLIENT_TIMEOUT_MS ?? 30000)
const DEBUG = Boolean(process.env.CLIENT_DEBUG) // trace every message to stderr
const ROOT_PREFIX = new TextEncoder().encode('p2p-orchestrator/transfer/manifest-root/1\0')

// -- output -----------------------------------------------------------------------------------

function toJson (value) {
  return JSON.stringify(value, (_key, v) => {
    if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()
    if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString('hex') }
    return v
  })
}

function emit (value) {
  return new Promise((resolve) => process.stdout.write(toJson(value) + '\n', resolve))
}

function trace (what, direction, message) {
  if (!DEBUG) return
  const shown = message.t === 'chunk' && message.data instanceof Uint8Array
    ? { ...message, data: `<${message.data.length} bytes>` }
    : message
  process.stderr.write(`[client] ${what} ${direction} ${toJson(shown).slice(0, 600)}\n`)
}

let finished = false
async function fail (message) {
  if (finished) return
  finished = true
  await emit({ error: message })
  process.exit(1)
}

// A failure of ours or a rule the node broke.  On a transfer stream the receiver tells the sender
// why with result {error} (code/type here), except when the stream is already over (tell: false).
class ClientError extends Error {
  constructor (message, { code = 'bad_message', type = 'ProtocolError', tell = true } = {}) {
    super(`${message} (${code})`)
    Object.assign(this, { reason: message, code, type, tell })
  }
}
const bad = (message, options) => { throw new ClientError(message, options) }
const distribution = (code, tell = true) => ({ code, type: 'ServiceDistributionError', tell })

// -- CBOR and frames --------------------------------------------------------------------------

function encodeFrame (message) {
  const payload = encode(message)
  const frame = new Uint8Array(4 + payload.length)
  new DataView(frame.buffer).setUint32(0, payload.length, false)
  frame.set(payload, 4)
  return frame
}

function decodePayload (payload) {
  let value
  try {
    value = decode(payload, {
      allowIndefinite: false, // cbor_indefinite
      allowUndefined: false, // cbor_bad_simple
      rejectDuplicateMapKeys: true, // cbor_duplicate_key
      useMaps: false, // text keys only: cborg refuses other keys when building objects
      tags: [] // no tag decoders: any tag is refused (cbor_tag_forbidden)
    })
  } catch (err) {
    bad(`undecodable CBOR payload (${payload.length} bytes): ${err.message}`, { code: 'bad_cbor' })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    bad('a payload that is not a CBOR map', { code: 'cbor_not_map' })
  }
  return value
}

// One stream: a writer fed by a queue (the stream's sink) and a frame reader over its source.
class FramedStream {
  constructor (stream, maxFrame, what) {
    this.stream = stream
    this.maxFrame = maxFrame
    this.what = what
    this.queue = []
    this.wake = null
    this.ended = false
    this.sinkDone = stream.sink(this.#outgoing()).catch((err) => { this.sinkError = err })
    this.source = stream.source[Symbol.asyncIterator]()
    this.chunks = [] // Uint8Array pieces not yet consumed
    this.buffered = 0
    this.eof = false
  }

  async * #outgoing () {
    while (true) {
      while (this.queue.length > 0) yield this.queue.shift()
      if (this.ended) return
      await new Promise((resolve) => { this.wake = resolve })
      this.wake = null
    }
  }

  send (message) {
    if (this.ended) bad(`${this.what}: send after close`, { code: 'connection_closed', tell: false })
    trace(this.what, '->', message)
    this.queue.push(encodeFrame(message))
    this.wake?.()
  }

  // Half-close (a clean EOF at a frame boundary) once every queued frame is written.
  async closeWrite () {
    this.ended = true
    this.wake?.()
    await this.sinkDone
    if (this.sinkError) bad(`${this.what}: writing failed: ${this.sinkError.message}`, { code: 'connection_closed', tell: false })
  }

  async #fill (n) {
    while (this.buffered < n) {
      const { value, done } = await this.source.next()
      if (done) { this.eof = true; return false }
      const bytes = value.subarray() // Uint8ArrayList -> Uint8Array
      if (bytes.length > 0) { this.chunks.push(bytes); this.buffered += bytes.length }
    }
    return true
  }

  #take (n) {
    const out = new Uint8Array(n)
    let offset = 0
    while (offset < n) {
      const head = this.chunks[0]
      const count = Math.min(head.length, n - offset)
      out.set(head.subarray(0, count), offset)
      offset += count
      if (count === head.length) this.chunks.shift()
      else this.chunks[0] = head.subarray(count)
    }
    this.buffered -= n
    return out
  }

  // The next message, or null at a clean EOF (a frame boundary).
  async receive () {
    if (!(await this.#fill(4))) {
      if (this.buffered === 0) return null
      bad(`${this.what}: EOF inside a frame header`, { code: 'truncated_frame', tell: false })
    }
    const header = this.#take(4)
    const length = new DataView(header.buffer).getUint32(0, false)
    if (length === 0) bad(`${this.what}: a frame of length 0`, { code: 'empty_frame' })
    if (length > this.maxFrame) bad(`${this.what}: a frame of ${length} bytes, over ${this.maxFrame}`, { code: 'frame_too_large' })
    if (!(await this.#fill(length))) bad(`${this.what}: EOF inside a frame of ${length} bytes`, { code: 'truncated_frame', tell: false })
    const message = decodePayload(this.#take(length))
    trace(this.what, '<-', message)
    return message
  }

  // After our last message: half-close, then read until the peer closes its side too.
  async finish (ignore) {
    await this.closeWrite()
    for (;;) {
      const message = await this.receive()
      if (message === null) return
      ignore?.(message)
    }
  }
}

// -- message checks ---------------------------------------------------------------------------

const isMap = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
const isInt = (v) => (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint'
const hex = (bytes) => Buffer.from(bytes).toString('hex')
const sha256 = (...parts) => {
  const h = createHash('sha256')
  for (const part of parts) h.update(part)
  return new Uint8Array(h.digest())
}
const sameBytes = (a, b) => a.length === b.length && Buffer.from(a).equals(Buffer.from(b))

function exactFields (owner, obj, fields) {
  const keys = Object.keys(obj).sort()
  const want = [...fields].sort()
  if (keys.length !== want.length || keys.some((k, i) => k !== want[i])) {
    bad(`${owner} has fields [${keys}], the protocol says exactly [${want}]`)
  }
}

function checkError (owner, error) {
  if (!isMap(error)) bad(`${owner}.error is not a map`)
  exactFields(`${owner}.error`, error, ['code', 'type', 'message'])
  for (const k of ['code', 'type', 'message']) {
    if (typeof error[k] !== 'string') bad(`${owner}.error.${k} is not text`)
  }
  return error
}

const describeError = (e) => `${e.type} [${e.code}] ${e.message}`

// -- RPC --------------------------------------------------------------------------------------

async function rpcCall (node, addr, method, params) {
  const raw = await node.dialProtocol(addr, RPC_PROTOCOL)
  const stream = new FramedStream(raw, RPC_MAX_FRAME, 'rpc stream')
  const id = 1
  stream.send({ t: 'req', id, method, params })
  const answer = await stream.receive()
  if (answer === null) bad('rpc stream: EOF before the answer', { code: 'channel_closed' })
  if (answer.t === 'res') {
    exactFields('res', answer, ['t', 'id', 'result'])
  } else if (answer.t === 'err') {
    exactFields('err', answer, ['t', 'id', 'error'])
    checkError('err', answer.error)
  } else {
    bad(`rpc stream: expected res or err, got ${toJson(answer).slice(0, 200)}`)
  }
  if (answer.id !== id) bad(`rpc stream: answer for id ${toJson(answer.id)}, expected ${id}`)
  // A clean half-close; the node answers it by closing its side.
  await stream.finish((m) => bad(`rpc stream: unexpected message after the answer: ${toJson(m).slice(0, 200)}`))
  return answer
}

// -- transfer (pull) --------------------------------------------------------------------------

function checkManifest (m) {
  const no = (message) => bad(message, distribution('bad_manifest'))
  if (!isMap(m)) no('offer.manifest is not a map')
  exactFields('manifest', m, ['archive_hash', 'total_size', 'chunk_size', 'chunk_hashes', 'root'])
  const { archive_hash: archiveHash, total_size: totalSize, chunk_size: chunkSize, chunk_hashes: hashes, root } = m
  if (typeof archiveHash !== 'string' || !/^[0-9a-f]{64}$/.test(archiveHash)) no('manifest.archive_hash is not 64 lowercase hex digits')
  if (!Number.isSafeInteger(totalSize) || totalSize < 1) no(`manifest.total_size ${toJson(totalSize)} is not a positive int`)
  if (!Number.isSafeInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) no(`manifest.chunk_size ${toJson(chunkSize)} out of range`)
  const count = Math.ceil(totalSize / chunkSize)
  if (count > MAX_CHUNKS) bad(`manifest has ${count} chunks, over ${MAX_CHUNKS}`, distribution('transfer_too_large'))
  if (!(hashes instanceof Uint8Array) || hashes.length !== 32 * count) no(`manifest.chunk_hashes must be ${32 * count} bytes`)
  if (!(root instanceof Uint8Array) || root.length !== 32) no('manifest.root must be 32 bytes')
  const geometry = new Uint8Array(16)
  const view = new DataView(geometry.buffer)
  view.setBigUint64(0, BigInt(totalSize), false)
  view.setBigUint64(8, BigInt(chunkSize), false)
  const expected = sha256(ROOT_PREFIX, Buffer.from(archiveHash, 'hex'), geometry, hashes)
  if (!sameBytes(expected, root)) no(`manifest.root ${hex(root)} is not ${hex(expected)}`)
  return { archiveHash, totalSize, chunkSize, hashes, count }
}

function bitfield (count, full) {
  const bits = new Uint8Array(Math.ceil(count / 8))
  if (full) for (let i = 0; i < count; i++) bits[i >> 3] |= 0x80 >> (i & 7)
  return bits
}

function readHave (owner, message, count) {
  exactFields(owner, message, ['t', 'bits'])
  const bits = message.bits
  if (!(bits instanceof Uint8Array) || bits.length !== Math.ceil(count / 8)) bad(`${owner}.bits must be ${Math.ceil(count / 8)} bytes`, distribution('bad_bitfield'))
  for (let i = count; i < bits.length * 8; i++) {
    if (bits[i >> 3] & (0x80 >> (i & 7))) bad(`${owner}.bits sets bit ${i}, past the last chunk`, distribution('bad_bitfield'))
  }
  const has = new Set()
  for (let i = 0; i < count; i++) if (bits[i >> 3] & (0x80 >> (i & 7))) has.add(i)
  return has
}

async function pull (node, addr, service) {
  const raw = await node.dialProtocol(addr, TRANSFER_PROTOCOL)
  const stream = new FramedStream(raw, TRANSFER_MAX_FRAME, 'transfer stream')
  try {
    return await receive(stream, service)
  } catch (err) {
    // The receiver refuses with result {error} (best effort), then closes.
    if (err instanceof ClientError && err.tell && !stream.ended) {
      try {
        stream.send({ t: 'result', ok: false, result: null, error: { code: err.code, type: err.type, message: err.reason } })
        await Promise.race([stream.closeWrite(), new Promise((resolve) => setTimeout(resolve, 1000))])
      } catch {}
    }
    throw err
  }
}

async function receive (stream, service) {
  const next = async (waitingFor) => {
    const message = await stream.receive()
    if (message === null) bad(`transfer stream: EOF while waiting for ${waitingFor}`, distribution('transfer_cut', false))
    if (message.t === 'abort') {
      exactFields('abort', message, ['t', 'error'])
      const error = checkError('abort', message.error)
      bad(`the node aborted the transfer: ${describeError(error)}`, { code: error.code, type: error.type, tell: false })
    }
    return message
  }
  const unexpected = (message) => bad(message, { code: 'unexpected_message' })

  stream.send({ t: 'fetch', archive_hash: null, service })

  // the sender's offer
  const offer = await next('the offer')
  if (offer.t !== 'offer') unexpected(`the first message must be an offer, not ${toJson(offer.t)}`)
  exactFields('offer', offer, ['t', 'manifest', 'purpose', 'options', 'peers'])
  const { count, chunkSize, totalSize, hashes, archiveHash } = checkManifest(offer.manifest)
  if (offer.purpose !== 'fetch') bad(`offer.purpose ${toJson(offer.purpose)} answering a fetch`)
  if (!isMap(offer.options)) bad('offer.options is not a map')
  exactFields('offer.options', offer.options, ['force_reinstall', 'auto_start'])
  if (typeof offer.options.force_reinstall !== 'boolean' || typeof offer.options.auto_start !== 'boolean') bad('offer.options must be booleans')
  if (!Array.isArray(offer.peers) || offer.peers.length !== 0) bad(`offer.peers must be [] answering a fetch, got ${toJson(offer.peers)}`)

  // the sender's have
  const first = await next('the sender\'s have')
  if (first.t !== 'have') unexpected(`expected the sender's have, got ${toJson(first.t)}`)
  let senderHas = readHave('have', first, count)

  // our have (nothing), then wants: at most WINDOW chunks asked and undelivered
  stream.send({ t: 'have', bits: bitfield(count, false) })
  const data = new Array(count).fill(null)
  const todo = Array.from({ length: count }, (_, i) => i) // chunks to ask for, in order
  const asked = new Set() // asked and undelivered
  let corrupt = 0
  let received = 0
  const askMore = () => {
    const batch = []
    for (let k = 0; k < todo.length && asked.size + batch.length < WINDOW; k++) {
      if (senderHas.has(todo[k])) { batch.push(todo[k]); todo.splice(k, 1); k-- }
    }
    if (batch.length > 0) {
      for (const i of batch) asked.add(i)
      stream.send({ t: 'want', indices: batch })
    }
  }
  askMore()

  while (received < count) {
    const message = await next('chunks')
    if (message.t === 'chunk') {
      exactFields('chunk', message, ['t', 'index', 'data'])
      const { index, data: bytes } = message
      if (!isInt(index) || index < 0 || index >= MAX_CHUNKS) bad(`chunk.index ${toJson(index)} is not an index`)
      if (!(bytes instanceof Uint8Array) || bytes.length < 1 || bytes.length > MAX_CHUNK_SIZE) bad('chunk.data must be 1 byte .. 4 MiB')
      if (index >= count) bad(`chunk ${index} is past the last chunk (${count - 1})`, distribution('chunk_out_of_range'))
      if (!asked.has(index)) bad(`chunk ${index} was not asked for or already received`, distribution('unexpected_chunk'))
      asked.delete(index)
      const length = Math.min(chunkSize, totalSize - index * chunkSize)
      if (bytes.length === length && sameBytes(sha256(bytes), hashes.subarray(32 * index, 32 * index + 32))) {
        data[index] = bytes
        received++
      } else if (++corrupt > MAX_CORRUPT) {
        bad(`chunk ${index} is the sender's corrupt chunk number ${corrupt}`, distribution('too_many_corrupt_chunks'))
      } else {
        todo.unshift(index) // never kept; asked again
      }
      askMore()
    } else if (message.t === 'have') {
      const has = readHave('have', message, count)
      for (const i of senderHas) if (!has.has(i)) bad('the sender\'s have update drops chunks', distribution('have_regressed'))
      senderHas = has
      askMore()
    } else if (message.t === 'done') {
      exactFields('done', message, ['t'])
      if (asked.size > 0) bad(`done while ${asked.size} chunks asked for are undelivered`, distribution('premature_done'))
      bad(`the sender said done with ${count - received} chunks missing`, distribution('transfer_failed'))
    } else {
      unexpected(`a receiver does not accept ${toJson(message.t)} here`)
    }
  }

  const whole = Buffer.concat(data)
  const digest = hex(sha256(whole))
  if (whole.length !== totalSize) bad(`assembled ${whole.length} bytes, expected ${totalSize}`, distribution('transfer_incomplete'))
  if (digest !== archiveHash) bad(`the archive's sha256 is ${digest}, the manifest says ${archiveHash}`, distribution('archive_hash_mismatch'))

  // Every chunk verified: tell the sender (a have of all chunks, as the node's own receiver does),
  // then the last word.  This client installs nothing, so its result map is empty.
  stream.send({ t: 'have', bits: bitfield(count, true) })
  stream.send({ t: 'result', ok: true, result: {}, error: null })
  await stream.finish() // whatever the sender sent before it saw our result is ignored
  return { archive_hash: digest, size: whole.length, chunks: count }
}

// -- main -------------------------------------------------------------------------------------

function readOneLine () {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin })
    let got = false
    rl.once('line', (line) => { got = true; rl.close(); resolve(line) })
    rl.once('close', () => { if (!got) reject(new ClientError('stdin closed before the address line', { code: 'bad_input' })) })
  })
}

async function main () {
  const node = await createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // py-libp2p runs identify on every new connection and logs an ERROR when the peer lacks it
    services: { identify: identify() }
  })
  try {
    await emit({ peer_id: node.peerId.toString() })
    const line = await readOneLine()
    let request
    try { request = JSON.parse(line) } catch (err) { bad(`the stdin line is not JSON: ${err.message}`, { code: 'bad_input' }) }
    if (!isMap(request) || typeof request.address !== 'string' || typeof request.service !== 'string') {
      bad('the stdin line must be {"address": "<multiaddr>", "service": "<name>"}', { code: 'bad_input' })
    }
    const addr = multiaddr(request.address)

    const answer = await rpcCall(node, addr, 'orchestrator/list_services', {})
    await emit({ rpc: answer })
    if (answer.t === 'err') bad(`the rpc call failed: ${describeError(answer.error)}`, { code: answer.error.code })

    await emit(await pull(node, addr, request.service))
  } finally {
    await Promise.race([node.stop(), new Promise((resolve) => setTimeout(resolve, 2000))])
  }
}

const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS)
main().then(
  () => { clearTimeout(timer); finished = true; process.exit(0) },
  (err) => fail(err instanceof ClientError ? err.message : `${err?.name ?? 'Error'}: ${err?.message ?? err}`)
)
