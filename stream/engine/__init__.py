"""The engine: records in, sync decisions out (`processor`), the in-order delivery that
guards it, and the offline runner that feeds it without Kafka. No framework imports."""
