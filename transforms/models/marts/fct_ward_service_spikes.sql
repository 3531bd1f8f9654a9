-- Ward x service x day: report posts against the ward's own baseline for that service, with
-- the spike flag of the city's rule (macro spike_flags, numbers from the city YAML).
{{ spike_flags(['ward_id', 'service_code'], 'min_count', ward_only=true) }}
