import Testing
@testable import HeraldLog
