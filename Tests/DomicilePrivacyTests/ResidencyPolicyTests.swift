import DomicileModel
import DomicilePrivacy
import XCTest

let samplePolicy = """
{
  "version": 4,
  "regions": {
    "eu": {"countries": ["DE", "FR"], "jurisdiction": "gdpr"},
    "us": {"countries": ["US"], "jurisdiction": "cpra"}
  },
  "purposes": {
    "product_recs": {"basis": {"eu": "consent", "us": "consent"}, "gpc": true},
    "analytics": {"basis": {"eu": "consent", "us": "legitimate_interest"}},
    "eu_only": {"basis": {"eu": "contract"}}
  },
  "transfers": [
    {"class": "aggregate", "from": "*", "to": "*"},
    {"class": "noised_embedding", "from": "eu", "to": ["us"], "noise_floor_epsilon": 4}
  ]
}
"""

final class ResidencyPolicyTests: XCTestCase {
    func policy(_ text: String = samplePolicy) throws -> ResidencyPolicy { try ResidencyPolicy(json: Array(text.utf8)) }
    func region(_ id: String) -> RegionID { try! RegionID(id) }
    func purpose(_ name: String) -> Purpose { try! Purpose(name) }

    func test_policy_mapsCountriesAndPurposesPerRegion() throws {
        let policy = try policy()
        XCTAssertEqual(policy.version, 4)
        XCTAssertEqual(policy.region(forCountry: try CountryCode("FR")), region("eu"))
        XCTAssertNil(policy.region(forCountry: try CountryCode("JP")), "unknown country: deny")
        XCTAssertEqual(policy.basis(for: purpose("analytics"), in: region("us")), .legitimateInterest)
        XCTAssertNil(policy.basis(for: purpose("eu_only"), in: region("us")), "a purpose not allowed in a region")
        XCTAssertNil(policy.basis(for: purpose("unknown_purpose"), in: region("eu")))
        XCTAssertTrue(policy.isCoveredWithoutConsent(purpose("analytics"), in: region("us")))
        XCTAssertFalse(policy.isCoveredWithoutConsent(purpose("analytics"), in: region("eu")))
        XCTAssertEqual(policy.gpcPurposes, [purpose("product_recs")])
        XCTAssertEqual(policy.jurisdiction(of: region("us")), "cpra")
    }

    func test_transfers_allowOnlyNamedNonResidentClasses() throws {
        let policy = try policy()
        XCTAssertNotNil(policy.transfer(.aggregate, from: region("us"), to: region("eu")))
        XCTAssertEqual(policy.transfer(.noisedEmbedding, from: region("eu"), to: region("us"))?.noiseFloorEpsilon, 4)
        XCTAssertNil(policy.transfer(.noisedEmbedding, from: region("us"), to: region("eu")), "not named: deny")
        XCTAssertNil(policy.transfer(.erasureSignal, from: region("eu"), to: region("us")), "not named: deny")
        for resident in DataClass.allCases where resident.isResident {
            XCTAssertNil(policy.transfer(resident, from: region("eu"), to: region("us")))
        }
        XCTAssertNil(policy.transfer(.aggregate, from: region("eu"), to: region("br")), "unknown region: deny")
    }

    func test_policy_errorsNameTheField() {
        let cases: [(String, String)] = [
            (#"{"version":0,"regions":{"eu":{"countries":[],"jurisdiction":"gdpr"}},"purposes":{}}"#, "version"),
            (#"{"version":1,"regions":{},"purposes":{}}"#, "regions"),
            (#"{"version":1,"regions":{"EU":{"countries":[],"jurisdiction":"gdpr"}},"purposes":{}}"#, "regions.EU"),
            (#"{"version":1,"regions":{"eu":{"countries":["DEU"],"jurisdiction":"gdpr"}},"purposes":{}}"#, "regions.eu.countries"),
            (#"{"version":1,"regions":{"eu":{"countries":["DE"],"jurisdiction":"gdpr"},"de":{"countries":["DE"],"jurisdiction":"x"}},"purposes":{}}"#, "regions.eu.countries"),
            (#"{"version":1,"regions":{"eu":{"countries":["DE"],"jurisdiction":"gdpr"}},"purposes":{"p":{"basis":{"us":"consent"}}}}"#, "purposes.p.basis.us"),
            (#"{"version":1,"regions":{"eu":{"countries":["DE"],"jurisdiction":"gdpr"}},"purposes":{"p":{"basis":{"eu":"vibes"}}}}"#, "purposes.p.basis.eu"),
            (#"{"version":1,"regions":{"eu":{"countries":["DE"],"jurisdiction":"gdpr"}},"purposes":{},"transfers":[{"class":"identity","from":"*","to":"*"}]}"#, "transfers[0].class"),
            (#"{"version":1,"regions":{"eu":{"countries":["DE"],"jurisdiction":"gdpr"}},"purposes":{},"transfers":[{"class":"aggregate","from":"mars","to":"*"}]}"#, "transfers[0].from"),
            (#"{"version":1,"regions":{"eu":{"countries":["DE"]}},"purposes":{}}"#, "regions.eu.jurisdiction"),
            (#"{"regions":{},"purposes":{}}"#, "version"),
            ("[1,2", "(document)"),
        ]
        for (text, field) in cases {
            XCTAssertThrowsError(try policy(text), field) { error in
                XCTAssertEqual((error as? PolicyError)?.field, field, "\(error)")
            }
        }
    }
}
