"""The partition on disk: file names, locks, indexes, segments, partitions, topics, the
cleaner (retention and compaction), verification, readers and append wake-ups."""
