/*
 * kafka_dev_cmd.h -- `bookingrush kafka-dev`: a librdkafka mock cluster on
 * 127.0.0.1 for local runs and tests (ISSUE11 §4.10). Creates
 * <prefix>payments, <prefix>effects and <prefix>payments.dlq, prints
 * bootstrap=..., answers control commands on stdin, runs until SIGINT or
 * SIGTERM. Data lives in memory only.
 */
#ifndef BR_KAFKA_DEV_CMD_H
#define BR_KAFKA_DEV_CMD_H

int br_kafka_dev_main(int argc, char **argv);

#endif
