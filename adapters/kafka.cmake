# Kafka (adapters/kafka.h): librdkafka, the idempotent producer and the saga's
# consumer loop; plus the relay's outbox SQL (pg_outbox.c) in brpg.
pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)
add_library(brkafka STATIC kafka.c)
target_include_directories(brkafka PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(brkafka PRIVATE ${BR_WARNINGS})
target_link_libraries(brkafka PUBLIC bradapters PkgConfig::RDKAFKA Threads::Threads)
target_sources(brpg PRIVATE pg_outbox.c)
