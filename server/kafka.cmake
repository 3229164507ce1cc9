# Payments in production: the outbox relay (relay.h) and `bookingrush
# kafka-dev` (kafka_dev_cmd.h), on brkafka (adapters/kafka.cmake).
if(TARGET brkafka)
  target_sources(brserver PRIVATE relay.c kafka_dev_cmd.c)
endif()
