/// The embedded default residency policy used by `cluster init` (and so by
/// the demo and the local clusters): three regions, four purposes.
enum DefaultPolicy {
    static let json = """
    {
      "version": 1,
      "regions": {
        "eu": {"countries": ["AT", "BE", "CZ", "DE", "DK", "ES", "FI", "FR", "GR", "IE", "IT", "NL", "PL", "PT", "SE"], "jurisdiction": "gdpr"},
        "us": {"countries": ["US"], "jurisdiction": "cpra"},
        "br": {"countries": ["BR"], "jurisdiction": "lgpd"}
      },
      "purposes": {
        "product_recs": {"basis": {"eu": "consent", "us": "consent", "br": "consent"}, "gpc": true},
        "marketing_email": {"basis": {"eu": "consent", "us": "consent", "br": "consent"}, "gpc": true},
        "analytics": {"basis": {"eu": "consent", "us": "legitimate_interest", "br": "consent"}, "gpc": false},
        "fraud_prevention": {"basis": {"eu": "legitimate_interest", "us": "legitimate_interest", "br": "legitimate_interest"}, "gpc": false}
      },
      "transfers": [
        {"class": "aggregate", "from": "*", "to": "*"},
        {"class": "noised_embedding", "from": "*", "to": "*", "noise_floor_epsilon": 8.0},
        {"class": "erasure_signal", "from": "*", "to": "*"}
      ]
    }
    """
}
