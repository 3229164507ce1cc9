# Payments in production: the outbox relay (relay.h) and `bookingrush
# kafka-dev` (kafka_dev_cmd.h), on brkafka (adapters/kafka.cmake).
if(TARGET brkafka)
  target_sources(brserver PRIVATE relay.c kafka_dev_cmd.c)
endif()
# Numbers for scripts/bench.d/65-payments.sh (the raw idempotent producer
# rate; signed webhooks through the servers with bench_dist_load's client).
if(TARGET brkafka)
  add_executable(br-bench-pay bench_pay.c bench_dist_load.c)
  target_compile_options(br-bench-pay PRIVATE ${BR_WARNINGS})
  target_link_libraries(br-bench-pay PRIVATE brkafka brhttp PkgConfig::BR_SERVER_DEPS)
  set_target_properties(br-bench-pay PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
endif()
