"""Record formats: Kafka RecordBatch v2 encode/decode and the murmur2 partitioner. Pure
functions over bytes: no files, no locks."""
