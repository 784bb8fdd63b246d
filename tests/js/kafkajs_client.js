// A kafkajs client for the tests: one JSON command in argv, one JSON result on stdout; or,
// with --lines, one JSON command a line on stdin and one JSON line per command on stdout,
// {"ok": result} or {"error": message}, until stdin ends (one node start for a module's
// commands). Commands: metadata, produce (keyed, idempotent), consume (one partition from
// an offset, until N records or a timeout; with headers and timestamps), group (a group
// member from committed offsets). Each command makes its own client and disconnects it.
const { Kafka, logLevel } = require("kafkajs");

let consumers = 0;  // a group id of its own for each consume command

// A record's headers as [key, base64 value] pairs (kafkajs groups a repeated key's values
// in an array, in order).
function headerPairs(headers) {
  const out = [];
  for (const [k, v] of Object.entries(headers || {})) {
    for (const one of Array.isArray(v) ? v : [v]) out.push([k, Buffer.from(one || []).toString("base64")]);
  }
  return out;
}

async function run(cmd) {
  const kafka = new Kafka({ clientId: "fslog-test", brokers: [cmd.bootstrap], logLevel: logLevel.ERROR,
                            retry: { retries: 3 } });
  if (cmd.op === "metadata") {
    const admin = kafka.admin();
    await admin.connect();
    const md = await admin.fetchTopicMetadata({ topics: cmd.topics });
    await admin.disconnect();
    return md.topics.map(t => ({ name: t.name, partitions: t.partitions.map(p => p.partitionId).sort() }));
  }
  if (cmd.op === "produce") {
    const producer = kafka.producer({ idempotent: !!cmd.idempotent, maxInFlightRequests: cmd.idempotent ? 1 : 5 });
    await producer.connect();
    const res = await producer.send({ topic: cmd.topic, acks: -1,
      messages: cmd.records.map(([k, v]) => ({ key: k, value: v })) });
    await producer.disconnect();
    return res.map(r => ({ partition: r.partition, baseOffset: Number(r.baseOffset), errorCode: r.errorCode }));
  }
  if (cmd.op === "consume") {
    const consumer = kafka.consumer({ groupId: `unused-${process.pid}-${Date.now()}-${consumers++}` });
    const got = [];
    // Without a group coordinator: read with the low-level fetch via a consumer seek.
    await consumer.connect();
    await consumer.subscribe({ topic: cmd.topic, fromBeginning: true });
    await new Promise(async (resolve) => {
      const timer = setTimeout(resolve, cmd.timeout_ms || 15000);
      await consumer.run({ eachMessage: async ({ partition, message }) => {
        if (cmd.partition !== undefined && partition !== cmd.partition) return;
        got.push({ partition, offset: Number(message.offset), key: message.key && message.key.toString(),
                   value: message.value && message.value.toString(), timestamp: message.timestamp,
                   headers: headerPairs(message.headers) });
        if (got.length >= cmd.count) { clearTimeout(timer); resolve(); }
      } });
      if (cmd.offset !== undefined) consumer.seek({ topic: cmd.topic, partition: cmd.partition || 0, offset: String(cmd.offset) });
    });
    await consumer.disconnect();
    return got;
  }
  if (cmd.op === "group") {
    // A group member: from the group's committed offsets, committing each record, until
    // it committed cmd.records (if given) or idle_ms pass without a record; then it
    // leaves the group.
    const consumer = kafka.consumer({ groupId: cmd.group, sessionTimeout: 6000, heartbeatInterval: 500 });
    const got = [];
    await consumer.connect();
    await consumer.subscribe({ topic: cmd.topic, fromBeginning: true });
    await new Promise(async (resolve) => {
      let timer = setTimeout(resolve, cmd.first_ms || 30000);
      await consumer.run({ autoCommit: false, eachMessage: async ({ topic, partition, message }) => {
        got.push({ partition, offset: Number(message.offset), value: message.value && message.value.toString() });
        await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }]);
        clearTimeout(timer);
        if (cmd.records !== undefined && got.length >= cmd.records) resolve();
        else timer = setTimeout(resolve, cmd.idle_ms || 3000);
      } });
    });
    await consumer.disconnect();
    return got;
  }
  throw new Error("unknown op " + cmd.op);
}

async function lines() {
  const rl = require("readline").createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let out;
    try {
      out = { ok: await run(JSON.parse(line)) };
    } catch (e) {
      out = { error: String(e && e.stack || e) };
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  }
}

if (process.argv[2] === "--lines") {
  lines().then(() => process.exit(0))
         .catch(e => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
} else {
  run(JSON.parse(process.argv[2]))
    .then(r => { process.stdout.write(JSON.stringify(r) + "\n"); process.exit(0); })
    .catch(e => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(1); });
}
