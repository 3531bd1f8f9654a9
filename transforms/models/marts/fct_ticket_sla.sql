-- One row per ticket social311 filed: its status and response times against the city's
-- targets (ops.sla_targets, from the city YAML), judged now. Overdue = still waiting past the
-- target; late = done, but after it. Residents: the posts behind the ticket, and how many have
-- waited past the answer target without a reply sent.
with

ledger as (

    select incident_id, service_code, service_request_id, filed_at
    from {{ source('ops', 'ticket_ledger') }}
    where state = 'submitted' and service_request_id is not null

),

status as (

    select
        service_request_id, status, acknowledged_at, closed_at,
        time_to_acknowledge_s, time_to_close_s, updated_at as status_updated_at
    from {{ source('ops', 'ticket_status') }}

),

incidents as (

    select incident_id, ward_id from {{ source('ops', 'incidents') }}

),

targets as (

    select * from {{ source('ops', 'sla_targets') }}

),

residents as (

    -- Each post behind the ticket, and when (if ever) the reply with the request number was sent.
    select
        incident_posts.incident_id,
        posts.created_at as posted_at,
        replies.sent_at as answered_at
    from {{ source('ops', 'incident_posts') }} as incident_posts
    inner join {{ source('raw', 'posts') }} as posts using (post_id)
    left join {{ source('ops', 'resident_replies') }} as replies
        on replies.post_id = incident_posts.post_id and replies.state = 'sent'

),

joined as (

    select
        ledger.service_request_id,
        ledger.incident_id,
        ledger.service_code,
        incidents.ward_id,
        ledger.filed_at,
        coalesce(status.status, 'open') as status,
        status.acknowledged_at,
        status.closed_at,
        status.time_to_acknowledge_s,
        status.time_to_close_s,
        coalesce(own.acknowledge_s, fallback.acknowledge_s) as acknowledge_target_s,
        coalesce(own.close_s, fallback.close_s) as close_target_s,
        coalesce(own.answer_s, fallback.answer_s) as answer_target_s,
        epoch(current_timestamp) - epoch(ledger.filed_at) as age_s
    from ledger
    left join status using (service_request_id)
    left join incidents using (incident_id)
    left join targets as own on own.service_code = ledger.service_code
    left join targets as fallback on fallback.service_code = 'default'

),

answers as (

    select
        joined.service_request_id,
        count(residents.posted_at) as resident_posts,
        count(residents.answered_at) as residents_answered,
        count(*) filter (
            where residents.answered_at is null
            and epoch(current_timestamp) - epoch(residents.posted_at) > joined.answer_target_s
        ) as residents_unanswered_overdue,
        count(*) filter (
            where residents.answered_at is not null
            and epoch(residents.answered_at) - epoch(residents.posted_at) > joined.answer_target_s
        ) as residents_answered_late
    from joined
    left join residents using (incident_id)
    group by all

),

final as (

    select
        joined.*,
        coalesce(answers.resident_posts, 0) as resident_posts,
        coalesce(answers.residents_answered, 0) as residents_answered,
        coalesce(answers.residents_unanswered_overdue, 0) as residents_unanswered_overdue,
        coalesce(answers.residents_answered_late, 0) as residents_answered_late,
        coalesce(joined.acknowledged_at is null and joined.closed_at is null
                 and joined.age_s > joined.acknowledge_target_s, false) as is_acknowledge_overdue,
        coalesce(joined.time_to_acknowledge_s > joined.acknowledge_target_s, false) as is_acknowledge_late,
        coalesce(joined.closed_at is null and joined.age_s > joined.close_target_s, false) as is_close_overdue,
        coalesce(joined.time_to_close_s > joined.close_target_s, false) as is_close_late,
        coalesce(answers.residents_unanswered_overdue, 0) > 0 as has_unanswered_residents
    from joined
    left join answers using (service_request_id)

)

select * from final
