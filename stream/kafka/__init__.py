"""Kafka through kafka-python: topics, producing, reading and offsets for the commands, and
the embedded Tansu broker. The only place kafka-python is imported."""
