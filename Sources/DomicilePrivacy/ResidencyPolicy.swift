import DomicileModel
import Foundation

/// The federation's residency policy: which regions exist, which countries
/// belong to which region, which purposes may be processed in which region on
/// which lawful basis, and which data classes may travel between regions.
/// Anything the policy does not name is denied.
public struct ResidencyPolicy: Sendable {
    public struct Region: Sendable {
        public let id: RegionID
        public let countries: Set<CountryCode>
        /// `gdpr`, `cpra`, `lgpd`, … (erasure deadlines follow it).
        public let jurisdiction: String
    }

    public struct PurposeRules: Sendable {
        public let purpose: Purpose
        /// The lawful basis for this purpose in each region where it may be processed.
        public let basis: [RegionID: LawfulBasis]
        /// Whether a Global Privacy Control signal revokes it.
        public let gpc: Bool
    }

    public struct TransferRule: Sendable, Equatable {
        public let dataClass: DataClass
        /// nil means every region.
        public let from: Set<RegionID>?
        public let to: Set<RegionID>?
        /// For noised embeddings: the largest ε an export to these regions may use.
        public let noiseFloorEpsilon: Double?

        func matches(_ dataClass: DataClass, from source: RegionID, to destination: RegionID) -> Bool {
            self.dataClass == dataClass && (from?.contains(source) ?? true) && (to?.contains(destination) ?? true)
        }
    }

    public let version: Int
    public let regions: [RegionID: Region]
    public let purposes: [Purpose: PurposeRules]
    public let transfers: [TransferRule]
    /// The document as loaded, served by `GET /v1/policy`.
    public let document: [UInt8]
    private let regionByCountry: [CountryCode: RegionID]

    /// The region a country belongs to, or nil (unknown country: deny).
    public func region(forCountry country: CountryCode) -> RegionID? { regionByCountry[country] }

    public func isKnown(_ region: RegionID) -> Bool { regions[region] != nil }

    /// The lawful basis for `purpose` in `region`; nil when the purpose may not
    /// be processed there (or is unknown).
    public func basis(for purpose: Purpose, in region: RegionID) -> LawfulBasis? {
        purposes[purpose]?.basis[region]
    }

    /// Whether data for `purpose` may be processed in `region` without a
    /// consent receipt, because the policy gives another lawful basis.
    public func isCoveredWithoutConsent(_ purpose: Purpose, in region: RegionID) -> Bool {
        guard let basis = basis(for: purpose, in: region) else { return false }
        return basis != .consent
    }

    /// The purposes a GPC signal revokes.
    public var gpcPurposes: Set<Purpose> { Set(purposes.values.filter(\.gpc).map(\.purpose)) }

    /// The rule that lets `dataClass` go from `source` to `destination`, or nil.
    /// Resident classes never match: validation refuses rules for them.
    public func transfer(_ dataClass: DataClass, from source: RegionID, to destination: RegionID) -> TransferRule? {
        guard !dataClass.isResident, isKnown(source), isKnown(destination) else { return nil }
        return transfers.first { $0.matches(dataClass, from: source, to: destination) }
    }

    public func jurisdiction(of region: RegionID) -> String? { regions[region]?.jurisdiction }
}

/// A policy document that cannot be used; `field` is a JSON path.
public struct PolicyError: Error, Equatable, Sendable, CustomStringConvertible {
    public let field: String
    public let reason: String

    public var description: String { "policy \(field): \(reason)" }
}

extension ResidencyPolicy {
    /// The JSON shape of the policy file (docs/CONFIGURATION.md).
    struct Document: Decodable {
        struct RegionEntry: Decodable {
            let countries: [String]
            let jurisdiction: String
        }

        struct PurposeEntry: Decodable {
            let basis: [String: String]
            let gpc: Bool?
        }

        struct TransferEntry: Decodable {
            let `class`: String
            let from: RegionList
            let to: RegionList
            let noiseFloorEpsilon: Double?
        }

        /// `"*"` or a region id or a list of region ids.
        enum RegionList: Decodable {
            case all
            case some([String])

            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let single = try? container.decode(String.self) {
                    self = single == "*" ? .all : .some([single])
                } else {
                    self = .some(try container.decode([String].self))
                }
            }
        }

        let version: Int
        let regions: [String: RegionEntry]
        let purposes: [String: PurposeEntry]
        let transfers: [TransferEntry]?
    }

    public static let documentBytesMax = 1 << 20

    /// Decodes and validates a policy document. Errors name the offending field.
    public init(json bytes: [UInt8]) throws(PolicyError) {
        guard bytes.count <= Self.documentBytesMax else { throw PolicyError(field: "(document)", reason: "larger than 1 MiB") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let document: Document
        do {
            document = try decoder.decode(Document.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw PolicyError(field: Self.path(of: error), reason: Self.reason(of: error))
        } catch {
            throw PolicyError(field: "(document)", reason: "not valid JSON")
        }
        try self.init(document: document, bytes: bytes)
    }

    private init(document: Document, bytes: [UInt8]) throws(PolicyError) {
        guard document.version >= 1 else { throw PolicyError(field: "version", reason: "must be 1 or more") }
        guard !document.regions.isEmpty else { throw PolicyError(field: "regions", reason: "at least one region is needed") }
        var regions: [RegionID: Region] = [:]
        var regionByCountry: [CountryCode: RegionID] = [:]
        for (name, entry) in document.regions.sorted(by: { $0.key < $1.key }) {
            guard let id = try? RegionID(name) else {
                throw PolicyError(field: "regions.\(name)", reason: "region ids are 1-16 lowercase letters or digits")
            }
            var countries = Set<CountryCode>()
            for code in entry.countries {
                guard let country = try? CountryCode(code) else {
                    throw PolicyError(field: "regions.\(name).countries", reason: "'\(code)' is not an ISO 3166-1 alpha-2 code")
                }
                if let other = regionByCountry[country] {
                    throw PolicyError(field: "regions.\(name).countries", reason: "\(code) already belongs to region \(other)")
                }
                regionByCountry[country] = id
                countries.insert(country)
            }
            guard !entry.jurisdiction.isEmpty else {
                throw PolicyError(field: "regions.\(name).jurisdiction", reason: "must not be empty")
            }
            regions[id] = Region(id: id, countries: countries, jurisdiction: entry.jurisdiction)
        }
        var purposes: [Purpose: PurposeRules] = [:]
        for (name, entry) in document.purposes.sorted(by: { $0.key < $1.key }) {
            guard let purpose = try? Purpose(name) else {
                throw PolicyError(field: "purposes.\(name)", reason: "purposes are lowercase letters, digits and _")
            }
            var basis: [RegionID: LawfulBasis] = [:]
            for (regionName, basisName) in entry.basis {
                guard let region = try? RegionID(regionName), regions[region] != nil else {
                    throw PolicyError(field: "purposes.\(name).basis.\(regionName)", reason: "unknown region")
                }
                guard let lawful = LawfulBasis(rawValue: basisName) else {
                    throw PolicyError(field: "purposes.\(name).basis.\(regionName)",
                                      reason: "unknown lawful basis '\(basisName)' (expected \(LawfulBasis.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                basis[region] = lawful
            }
            purposes[purpose] = PurposeRules(purpose: purpose, basis: basis, gpc: entry.gpc ?? false)
        }
        var transfers: [TransferRule] = []
        for (index, entry) in (document.transfers ?? []).enumerated() {
            let field = "transfers[\(index)]"
            guard let dataClass = DataClass(rawValue: entry.class) else {
                throw PolicyError(field: "\(field).class", reason: "unknown data class '\(entry.class)'")
            }
            guard !dataClass.isResident else {
                throw PolicyError(field: "\(field).class", reason: "\(dataClass.rawValue) data never leaves its home region")
            }
            let from = try Self.regionSet(entry.from, field: "\(field).from", known: regions)
            let to = try Self.regionSet(entry.to, field: "\(field).to", known: regions)
            if let epsilon = entry.noiseFloorEpsilon, !(epsilon > 0 && epsilon.isFinite) {
                throw PolicyError(field: "\(field).noise_floor_epsilon", reason: "must be a positive number")
            }
            transfers.append(TransferRule(dataClass: dataClass, from: from, to: to, noiseFloorEpsilon: entry.noiseFloorEpsilon))
        }
        self.version = document.version
        self.regions = regions
        self.purposes = purposes
        self.transfers = transfers
        self.document = bytes
        self.regionByCountry = regionByCountry
    }

    private static func regionSet(_ list: Document.RegionList, field: String,
                                  known: [RegionID: Region]) throws(PolicyError) -> Set<RegionID>? {
        guard case .some(let names) = list else { return nil }
        var set = Set<RegionID>()
        for name in names {
            guard let region = try? RegionID(name), known[region] != nil else {
                throw PolicyError(field: field, reason: "unknown region '\(name)'")
            }
            set.insert(region)
        }
        return set
    }

    private static func path(of error: DecodingError) -> String {
        let context: DecodingError.Context
        var tail: String?
        switch error {
        case .keyNotFound(let key, let errorContext):
            context = errorContext
            tail = Self.snake(key.stringValue)
        case .typeMismatch(_, let errorContext), .valueNotFound(_, let errorContext), .dataCorrupted(let errorContext):
            context = errorContext
        @unknown default:
            return "(document)"
        }
        let parts = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? Self.snake($0.stringValue) } + (tail.map { [$0] } ?? [])
        let joined = parts.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        return joined.isEmpty ? "(document)" : joined
    }

    private static func reason(of error: DecodingError) -> String {
        switch error {
        case .keyNotFound: return "is required"
        case .typeMismatch(let type, _): return "has the wrong type (expected \(type))"
        case .valueNotFound: return "must not be null"
        case .dataCorrupted(let context): return context.codingPath.isEmpty ? "not valid JSON" : context.debugDescription
        @unknown default: return "is invalid"
        }
    }

    private static func snake(_ key: String) -> String {
        key.reduce(into: "") { result, character in
            if character.isUppercase { result += "_" + character.lowercased() } else { result.append(character) }
        }
    }
}
