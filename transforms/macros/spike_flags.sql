{#
  The spike rule, shared by the ward x service and the city-wide marts.
  Report posts (reposts left out: one more voice, not one more report) of
  int_posts_in_wards are counted per `keys` and day; `ward_only` keeps posts placed in a ward. A day is a spike when it has at least `min_count` posts and at least `ratio`
  times its baseline: the larger of the rolling mean (every day of the `baseline_days` before,
  empty days counted as 0) and the seasonal mean (the same weekday in those weeks). Days are
  only judged once the city has `min_history_days` of posts before them, so a fresh deployment
  does not flag everything. The rule's numbers come from ops.spike_rule (the city YAML).
#}
{% macro spike_flags(keys, min_count_column, ward_only) %}
    with

    daily as (

        select
            {% for key in keys %}{{ key }},{% endfor %}
            cast(created_at as date) as activity_date,
            count(*) as post_count
        from {{ ref('int_posts_in_wards') }}
        where is_report and not coalesce(is_repost, false) and service_code is not null
            {% if ward_only %}and ward_id is not null{% endif %}
        group by all

    ),

    rule as (

        -- The city's rule, or the documented defaults before the settings asset has run.
        select
            coalesce(spike_rule.baseline_days, 28) as baseline_days,
            coalesce(spike_rule.min_history_days, 7) as min_history_days,
            coalesce(spike_rule.min_count, 3) as min_count,
            coalesce(spike_rule.city_min_count, 5) as city_min_count,
            coalesce(spike_rule.ratio, 3.0) as ratio
        from (select 1 as one) as defaults
        left join {{ source('ops', 'spike_rule') }} as spike_rule on true

    ),

    first_day as (

        select min(activity_date) as first_date from daily

    ),

    history as (

        select
            {% for key in keys %}today.{{ key }},{% endfor %}
            today.activity_date,
            coalesce(sum(before.post_count), 0) as baseline_posts,
            coalesce(sum(before.post_count) filter (
                where dayofweek(before.activity_date) = dayofweek(today.activity_date)), 0) as weekday_posts
        from daily as today
        cross join rule
        left join daily as before
            on {% for key in keys %}before.{{ key }} is not distinct from today.{{ key }} and {% endfor %}
            before.activity_date >= today.activity_date - rule.baseline_days
            and before.activity_date < today.activity_date
        group by all

    ),

    final as (

        select
            {% for key in keys %}daily.{{ key }},{% endfor %}
            daily.activity_date,
            daily.post_count,
            least(rule.baseline_days, daily.activity_date - first_day.first_date) as history_days,
            -- Means over the days the city has data for (a young deployment's empty past is not 0).
            round(history.baseline_posts / greatest(history_days, 1), 3) as rolling_mean,
            round(history.weekday_posts / greatest(floor(history_days / 7), 1), 3) as weekday_mean,
            greatest(rolling_mean, weekday_mean) as baseline_mean,
            daily.post_count >= rule.{{ min_count_column }}
            and daily.post_count >= rule.ratio * baseline_mean
            and history_days >= rule.min_history_days as is_spike
        from daily
        cross join rule
        cross join first_day
        inner join history
            on {% for key in keys %}history.{{ key }} is not distinct from daily.{{ key }} and {% endfor %}
            history.activity_date = daily.activity_date

    )

    select * from final
{% endmacro %}
