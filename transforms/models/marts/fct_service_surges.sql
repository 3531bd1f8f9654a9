-- Service x day city-wide, located or not: a surge of reports of one type (a storm's flooding,
-- an outage's dark lights) against the service's baseline, with the city-wide minimum count.
{{ spike_flags(['service_code'], 'city_min_count', ward_only=false) }}
