@testable import DomicileNode
import DomicileModel
import DomicileNet
import Foundation
import XCTest

/// The `wan` section (docs/CONFIGURATION.md) and what it shapes, and the
/// `Server-Timing` value a federation answer carries.
final class WANConfigurationTests: XCTestCase {
    private let base: [String: Any] = [
        "node": "eu-1", "region": "eu", "data_dir": "data", "keyring": "k.keyring", "policy": "policy.json",
        "principals": "principals.json", "http": ["address": "127.0.0.1:7100"], "tls": ["plaintext": true],
    ]

    private func parse(wan: Any) throws -> NodeConfiguration {
        var object = base
        object["wan"] = wan
        return try NodeConfiguration.decode(Array(try JSONSerialization.data(withJSONObject: object)), relativeTo: "/etc/domicile")
    }

    private func refuses(_ wan: Any, _ field: String, _ reason: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(wan: wan), file: file, line: line) { error in
            XCTAssertEqual("\(error)", "config \(field): \(reason)", file: file, line: line)
        }
    }

    func test_wan_shapesOnlyThePeersOfOtherRegions_withHalfTheirPairsRoundTrip() throws {
        let configuration = try parse(wan: [
            "peers": ["127.0.0.1:7101": "eu", "127.0.0.1:7103": "us", "127.0.0.1:7306": "br", "127.0.0.1:7109": "sa"],
            "round_trip_ms": ["us-eu": 80, "eu-br": 190], "loss_percent": ["br-eu": 2.5],
        ])
        let wan = try XCTUnwrap(configuration.wan)
        XCTAssertEqual(wan.roundTripMilliseconds[.init(try RegionID("eu"), try RegionID("us"))], 80, "a pair in either order")
        let shaper = try XCTUnwrap(wan.shaper(from: configuration.region))
        func shape(_ address: String) throws -> LinkShape? { shaper.shape(to: try SocketAddress(parsing: address)) }
        XCTAssertEqual(try shape("127.0.0.1:7103"), LinkShape(oneWayMicroseconds: 40_000, loss: 0))
        XCTAssertEqual(try shape("127.0.0.1:7306"), LinkShape(oneWayMicroseconds: 95_000, loss: 0.025))
        XCTAssertNil(try shape("127.0.0.1:7101"), "no shaping inside the region")
        XCTAssertNil(try shape("127.0.0.1:7109"), "a pair without a round trip or loss is not shaped")
        XCTAssertNil(try shape("127.0.0.1:7999"), "nor an address not listed")

        XCTAssertEqual(try NodeConfiguration.decode(try configuration.encoded(), relativeTo: "/elsewhere"), configuration)
        XCTAssertNil(try NodeConfiguration.decode(Array(try JSONSerialization.data(withJSONObject: base)), relativeTo: "/").wan,
                     "no section, no shaper")
    }

    func test_wan_refusesWhatItCannotShape_namingTheField() {
        refuses(["round_trip_ms": ["eu-eu": 10]], "wan.round_trip_ms.eu-eu", "is not a pair of two different regions, such as eu-us")
        refuses(["round_trip_ms": ["eu": 10]], "wan.round_trip_ms.eu", "is not a pair of two different regions, such as eu-us")
        refuses(["round_trip_ms": ["eu-us": 80, "us-eu": 90]], "wan.round_trip_ms.us-eu", "names a pair already listed")
        refuses(["round_trip_ms": ["eu-us": -1]], "wan.round_trip_ms.eu-us", "must be in 0.0...60000.0")
        refuses(["loss_percent": ["eu-us": 101]], "wan.loss_percent.eu-us", "must be in 0.0...100.0")
        refuses(["peers": ["nowhere": "eu"]], "wan.peers.nowhere", "is not a host:port address")
        refuses(["peers": ["127.0.0.1:1": "EU!"]], "wan.peers.127.0.0.1:1", "\(regionIDReason())")
        refuses(["latency": [:]], "wan.latency", "unknown key")
    }

    func test_serverTiming_readsTheDurationOfItsMetric() {
        let value = ServerTiming.value(metric: "federation", milliseconds: 1.25)
        XCTAssertEqual(value, "federation;dur=1.250")
        XCTAssertEqual(ServerTiming.milliseconds(value, metric: "federation"), 1.25)
        XCTAssertEqual(ServerTiming.milliseconds(#"db;dur=9, federation;desc="answer";dur=2.5"#, metric: "federation"), 2.5)
        XCTAssertNil(ServerTiming.milliseconds("db;dur=9", metric: "federation"))
        XCTAssertNil(ServerTiming.milliseconds("federation;dur=-3", metric: "federation"))
        XCTAssertNil(ServerTiming.milliseconds(nil, metric: "federation"))
    }
}

/// The reason `RegionID` gives for a malformed id, as the config error repeats it.
private func regionIDReason() -> String {
    do { _ = try RegionID("EU!"); return "" } catch { return "\(error)" }
}
