/// A log that takes an import's records as prepared (framed and compressed) blocks, all in
/// one append: the data directory's segment writer, or a log kept elsewhere (a JetStream
/// stream). `herald import` validates every line, compresses as it goes, and hands the blocks
/// over only once all are valid.
public protocol PreparedBlocksLog: AnyObject {
    /// The largest encoded record the log takes, in bytes: an import refuses a larger one at its line.
    var recordBytesMax: Int { get }
    /// Empty blocks, sized and compressed as this log writes them.
    func makePreparedBlocks() -> PreparedBlocks
    /// Appends `prepared` as one transaction and returns its positions once durable (nil when empty).
    func append(_ prepared: PreparedBlocks) throws -> ClosedRange<UInt64>?
    /// Releases the log.
    func close() throws
}
