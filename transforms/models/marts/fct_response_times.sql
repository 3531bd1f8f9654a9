-- How fast the city acknowledges and closes social311's tickets, median and 90th percentile,
-- per ward and service and per service city-wide (ward_id null, is_city_total), from the
-- synced ops.ticket_status.
with

tickets as (

    select * from {{ ref('fct_ticket_sla') }}

),

final as (

    select
        ward_id,
        service_code,
        grouping(ward_id) = 1 as is_city_total,
        count(*) as ticket_count,
        count(acknowledged_at) as acknowledged_count,
        count(closed_at) as closed_count,
        count(*) filter (where status <> 'closed') as open_count,
        round(quantile_cont(time_to_acknowledge_s, 0.5) / 3600, 2) as acknowledge_median_h,
        round(quantile_cont(time_to_acknowledge_s, 0.9) / 3600, 2) as acknowledge_p90_h,
        round(quantile_cont(time_to_close_s, 0.5) / 3600, 2) as close_median_h,
        round(quantile_cont(time_to_close_s, 0.9) / 3600, 2) as close_p90_h,
        count(*) filter (where is_acknowledge_overdue or is_close_overdue) as overdue_count
    from tickets
    group by grouping sets ((ward_id, service_code), (service_code))

)

select * from final
