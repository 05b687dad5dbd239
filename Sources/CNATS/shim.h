// The official NATS C client (Debian: libnats-dev), for the log on NATS JetStream.
#include <nats/nats.h>
