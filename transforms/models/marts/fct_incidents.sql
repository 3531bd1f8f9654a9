-- One row per incident with its service, ward and ticket state: what the 311 desk and the
-- ward report read.
with

incidents as (

    select * from {{ source('ops', 'incidents') }}

),

ledger as (

    select incident_id, state as ticket_state, service_request_id, attempts as filing_attempts,
           last_error as filing_error, created_at as ticket_requested_at
    from {{ source('ops', 'ticket_ledger') }}

),

catalog as (

    select service_code, service_name from {{ source('ops', 'service_catalog') }}

),

final as (

    select
        incidents.incident_id,
        incidents.service_code,
        catalog.service_name,
        incidents.type_id,
        incidents.ward_id,
        incidents.boundary_version,
        incidents.lat,
        incidents.lon,
        incidents.first_seen_at,
        incidents.last_seen_at,
        cast(incidents.first_seen_at as date) as first_seen_date,
        incidents.post_count,
        incidents.representative_text,
        incidents.confidence,
        incidents.status as incident_status,
        coalesce(ledger.ticket_state, 'not_filed') as ticket_state,
        ledger.service_request_id,
        ledger.filing_attempts,
        ledger.filing_error,
        ledger.ticket_requested_at,
        ledger.service_request_id is not null as has_ticket
    from incidents
    left join ledger using (incident_id)
    left join catalog using (service_code)

)

select * from final
