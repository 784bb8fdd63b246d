"""Admin APIs (CreateTopics, DeleteTopics, DescribeConfigs, IncrementalAlterConfigs): not yet."""
