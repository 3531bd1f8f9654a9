-- Ward x service type x day: posts, incidents and tickets. The grain council members read.
with

posts as (

    select
        ward_id,
        service_code,
        cast(created_at as date) as activity_date,
        count(*) as post_count,
        avg(sentiment) as mean_sentiment
    from {{ ref('int_posts_in_wards') }}
    where is_report and service_code is not null and ward_id is not null
    group by all

),

incidents as (

    select
        ward_id,
        service_code,
        first_seen_date as activity_date,
        count(*) as incident_count,
        count(*) filter (where has_ticket) as ticket_count
    from {{ ref('fct_incidents') }}
    where ward_id is not null and service_code is not null
    group by all

),

final as (

    select
        coalesce(posts.ward_id, incidents.ward_id) as ward_id,
        coalesce(posts.service_code, incidents.service_code) as service_code,
        coalesce(posts.activity_date, incidents.activity_date) as activity_date,
        coalesce(posts.post_count, 0) as post_count,
        coalesce(incidents.incident_count, 0) as incident_count,
        coalesce(incidents.ticket_count, 0) as ticket_count,
        posts.mean_sentiment
    from posts
    full outer join incidents
        on posts.ward_id = incidents.ward_id
        and posts.service_code = incidents.service_code
        and posts.activity_date = incidents.activity_date

)

select * from final
