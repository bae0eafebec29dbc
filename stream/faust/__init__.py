"""The Faust edge: the worker, the fixes to Faust, aiokafka and mode it relies on, the
outbox that sends syncs and dead letters, and the web views. The only place faust, mode and
aiokafka are imported."""
