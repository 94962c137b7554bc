import XCTest

public func XCTAssertThrowsErrorAsync<T>(_ expression: @autoclosure () async throws -> T, file: StaticString = #filePath,
                                  line: UInt = #line, _ handler: (any Error) -> Void = { _ in }) async {
    do {
        _ = try await expression()
        XCTFail("expected an error", file: file, line: line)
    } catch {
        handler(error)
    }
}

/// `XCTAssertEqual` for an expression that awaits.
public func XCTAssertEqualAsync<T: Equatable>(_ expression: @autoclosure () async throws -> T, _ expected: @autoclosure () -> T,
                                              _ message: @autoclosure () -> String = "", file: StaticString = #filePath,
                                              line: UInt = #line) async {
    do {
        let value = try await expression()
        XCTAssertEqual(value, expected(), message(), file: file, line: line)
    } catch {
        XCTFail("threw \(error) \(message())", file: file, line: line)
    }
}
