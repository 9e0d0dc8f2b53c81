// Package connectors defines the connector SPI of sluice — sources, sinks and
// transforms that exchange Apache Arrow record batches — together with the
// typed option specifications that validate a connector's configuration and
// document it in the sluice.connectors system table.
//
// The implementations live in sub-packages (datagen, blackhole, console,
// tablerename). This package imports no other package of sluice: it is the
// leaf every other layer builds on. Connectors are registered explicitly by
// cmd/sluice, never by init() side effects.
package connectors
